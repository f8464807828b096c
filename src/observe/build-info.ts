import { readFileSync } from 'node:fs';

/** oingate's own version, from package.json: for `oingate version` and `oingate_build_info`. */
export const BUILD_VERSION: string = (() => {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
})();
