#!/usr/bin/env node
// An installed package ships only the compiled dist/, which plain node runs.
// A checkout runs dist/ too when it is a build of exactly the sources present
// (build-stamp.mjs): it starts ~0.7 s sooner, so do its worker threads
// (~0.3 s each), and it is spared tsx's keepNames renaming on the hot path.
// Otherwise the TypeScript sources run through tsx, so a stale build never
// runs. The `build` field of the `oingate listening` log line says which ran.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const sources = new URL('./cli.ts', import.meta.url);
const dist = new URL('../dist/cli.js', import.meta.url).href;
if (!existsSync(sources)) {
  await import(dist);
} else {
  const { distIsFresh } = await import('./build-stamp.mjs');
  if (distIsFresh(fileURLToPath(new URL('..', import.meta.url)))) {
    await import(dist);
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    await import(sources.href);
  }
}
