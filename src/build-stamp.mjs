// Whether a checkout's dist/ is a build of exactly the sources it holds, so
// that src/bin.js can run the compiled code without ever running a stale
// build. The build (src/prepare.mjs) writes the digest of what it compiled
// into dist/; a checkout's dist/ is fresh when that stamp equals the digest of
// the files now. A digest of content, not modification times: a checkout, a
// stash or a copy changes times without changing code, and an edit in the
// same second as a build can keep them. Plain JavaScript, since it runs
// before tsx is loaded (and in order not to load it).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The stamp, relative to the checkout's root: the hex digest of the sources dist/ was built from. */
export const STAMP = 'dist/.sources-sha256';

/**
 * What tsc takes from src/ for `-p src/tsconfig.build.json`: its `include`
 * of "." picks TypeScript files (.d.ts ones among them); without allowJs it
 * takes no JavaScript, which its `exclude` leaves out besides.
 */
const COMPILED = /\.(ts|tsx|mts|cts)$/;

/** Besides the compiled files, what decides the output. */
const SETTINGS = [
  'src/tsconfig.build.json', // the build's own options
  'tsconfig.json', // which it extends: target, module, strictness
  'package.json', // its "type" makes module NodeNext emit ES modules
  'package-lock.json', // the compiler's exact version
];

/** The files under `dir` (relative to `root`, with `/`) that tsc compiles; symbolic links followed. */
function compiledUnder(root, dir, into) {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    const directory = entry.isSymbolicLink() ? statSync(join(root, path)).isDirectory() : entry.isDirectory();
    if (directory) compiledUnder(root, path, into);
    else if (COMPILED.test(entry.name)) into.push(path);
  }
  return into;
}

/** Every file that decides what the build makes, sorted: the same list for the same tree wherever it is. */
export function sourceFiles(root) {
  return [...compiledUnder(root, 'src', []), ...SETTINGS].sort();
}

/**
 * SHA-256 over each of {@link sourceFiles}' path, length and content (so no
 * two trees give the same stream); a file that is absent counts as such.
 * Throws when a file cannot be read.
 */
export function sourcesDigest(root) {
  const hash = createHash('sha256');
  for (const path of sourceFiles(root)) {
    let content;
    try {
      content = readFileSync(join(root, path));
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
      hash.update(`${path}\0absent\0`);
      continue;
    }
    hash.update(`${path}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest('hex');
}

/**
 * Whether `root`'s dist/ was built from exactly the sources under it: its
 * stamp equals their digest now, and dist/cli.js is there. Anything missing
 * or unreadable makes it not fresh (the sources run then, never a stale
 * build).
 */
export function distIsFresh(root) {
  try {
    if (!statSync(join(root, 'dist', 'cli.js')).isFile()) return false;
    return readFileSync(join(root, STAMP), 'utf8').trim() === sourcesDigest(root);
  } catch {
    return false;
  }
}
