// Builds dist/ (tsc -p src/tsconfig.build.json) and stamps it with the
// digest of the sources it was built from (build-stamp.mjs), which src/bin.js
// checks before it runs dist/ in a checkout. `npm run build` runs it with
// --require-typescript. As `prepare` (`npm ci` / `npm install` in a clone,
// `npm pack`) it skips the build when the compiler is absent: with
// `--omit=dev` (an image that only runs `oingate serve`) the bin then runs
// the sources through tsx, so the install does not fail.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourcesDigest, STAMP } from './build-stamp.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  if (process.argv.includes('--require-typescript')) {
    console.error('oingate: typescript is not installed: cannot build dist/');
    process.exit(1);
  }
  console.log('oingate: typescript is not installed (--omit=dev?); dist/ not built, the bin runs the sources');
  process.exit(0);
}
const stamp = join(root, STAMP);
// While tsc rewrites dist/, it is the build of nothing.
rmSync(stamp, { force: true });
// Taken before tsc reads the sources: one edited during the build then disagrees with the stamp.
const digest = sourcesDigest(root);
const built = spawnSync(process.execPath, [tsc, '-p', join(root, 'src', 'tsconfig.build.json')], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);
writeFileSync(stamp, `${digest}\n`);
