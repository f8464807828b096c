import { readFileSync } from 'node:fs';

/** oingate's own version, from package.json: for `oingate version` and `oingate_build_info`. */
export const BUILD_VERSION: string = (() => {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
})();

/**
 * Which code runs: the compiled `dist/` (an installed package, or a
 * checkout's build of exactly its sources, see src/bin.js) or the TypeScript
 * sources through tsx. Told by this module's own file, so it is what runs,
 * not what was meant to.
 */
export const BUILD_RUNNING: 'dist' | 'sources' = import.meta.url.endsWith('.js') ? 'dist' : 'sources';
