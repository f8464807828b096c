// Run by `npm ci` / `npm install` in a clone and by `npm pack`: builds dist/,
// the compiled library. With `--omit=dev` (an image that only runs
// `oingate serve`) the compiler is absent and not needed: the bin runs the
// sources through tsx, so the build is skipped rather than failing the install.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  console.log('oingate: typescript is not installed (--omit=dev?); dist/ not built, the bin runs the sources');
  process.exit(0);
}
execFileSync(process.execPath, [tsc, '-p', fileURLToPath(new URL('./tsconfig.build.json', import.meta.url))], { stdio: 'inherit' });
