/**
 * Whether a checkout's dist/ is a build of exactly its sources: the digest
 * src/bin.js compares with the stamp the build wrote, on temporary trees.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { distIsFresh, sourceFiles, sourcesDigest, STAMP } from '../src/build-stamp.mjs';
import { REPO_ROOT } from './support/checkout.ts';

const run = promisify(execFile);

/** A small checkout: a few sources, the build's settings, a built dist/cli.js; not yet stamped. */
const TREE: Record<string, string> = {
  'src/cli.ts': "export const cli = 'cli';\n",
  'src/model/a.ts': 'export const a = 1;\n',
  'src/model/b.ts': 'export const b = 2;\n',
  'src/types.d.ts': 'export type T = string;\n',
  'src/bin.js': '// not compiled\n',
  'src/prepare.mjs': '// not compiled\n',
  'src/tsconfig.build.json': '{ "extends": "../tsconfig.json" }\n',
  'tsconfig.json': '{ "compilerOptions": { "target": "ES2022" } }\n',
  'package.json': '{ "type": "module" }\n',
  'package-lock.json': '{ "lockfileVersion": 3 }\n',
  'dist/cli.js': "export const cli = 'cli';\n",
};

describe('the build stamp (src/build-stamp.mjs)', () => {
  let root: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'oingate-stamp-'));
    for (const [path, content] of Object.entries(TREE)) {
      await mkdir(join(root, path, '..'), { recursive: true });
      await writeFile(join(root, path), content);
    }
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const stamp = () => writeFile(join(root, STAMP), `${sourcesDigest(root)}\n`);

  it('lists the TypeScript files under src/ and the build settings, sorted, not the JavaScript tsc does not compile', () => {
    expect(sourceFiles(root)).to.deep.equal([
      'package-lock.json',
      'package.json',
      'src/cli.ts',
      'src/model/a.ts',
      'src/model/b.ts',
      'src/tsconfig.build.json',
      'src/types.d.ts',
      'tsconfig.json',
    ]);
  });

  it('lists every file under src/ that tsc compiles for this repository, and the settings that decide its output', async () => {
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const { stdout } = await run(process.execPath, [tsc, '-p', join(REPO_ROOT, 'src', 'tsconfig.build.json'), '--listFilesOnly'], { cwd: REPO_ROOT });
    const compiled = stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((file) => relative(REPO_ROOT, file).split('\\').join('/'))
      .filter((file) => file.startsWith('src/'));
    expect(compiled, 'tsc compiles the sources').to.include('src/cli.ts');
    const settings = ['package-lock.json', 'package.json', 'src/tsconfig.build.json', 'tsconfig.json'];
    expect(sourceFiles(REPO_ROOT)).to.deep.equal([...compiled, ...settings].sort());
  });

  it('is fresh when the stamp equals the digest of the sources now', async () => {
    await stamp();
    expect(distIsFresh(root)).to.equal(true);
  });

  for (const [what, change] of [
    ['a source changes', (dir: string) => writeFile(join(dir, 'src/model/a.ts'), 'export const a = 3;\n')],
    ['a source is added', (dir: string) => writeFile(join(dir, 'src/model/c.ts'), 'export const c = 3;\n')],
    ['a source is removed', (dir: string) => unlink(join(dir, 'src/model/b.ts'))],
    ['a source is renamed, its content kept', (dir: string) => unlink(join(dir, 'src/model/b.ts')).then(() => writeFile(join(dir, 'src/model/c.ts'), TREE['src/model/b.ts'] as string))],
    ['a declaration file changes', (dir: string) => writeFile(join(dir, 'src/types.d.ts'), 'export type T = number;\n')],
    ['the build tsconfig changes', (dir: string) => writeFile(join(dir, 'src/tsconfig.build.json'), '{ "extends": "../tsconfig.json", "compilerOptions": {} }\n')],
    ['the tsconfig it extends changes', (dir: string) => writeFile(join(dir, 'tsconfig.json'), '{ "compilerOptions": { "target": "ES2020" } }\n')],
    ['package.json changes', (dir: string) => writeFile(join(dir, 'package.json'), '{ "type": "commonjs" }\n')],
    ['the lock file (the compiler version) changes', (dir: string) => writeFile(join(dir, 'package-lock.json'), '{ "lockfileVersion": 2 }\n')],
    ['the lock file is removed', (dir: string) => unlink(join(dir, 'package-lock.json'))],
    ['the stamp is missing', (dir: string) => unlink(join(dir, STAMP))],
    ['the stamp is not a digest', (dir: string) => writeFile(join(dir, STAMP), 'built\n')],
    ['dist/cli.js is missing', (dir: string) => unlink(join(dir, 'dist/cli.js'))],
    ['a source cannot be read (a dangling link)', (dir: string) => symlink(join(dir, 'nowhere.ts'), join(dir, 'src/gone.ts'))],
  ] as const) {
    it(`is not fresh once ${what}`, async () => {
      await stamp();
      await change(root);
      expect(distIsFresh(root)).to.equal(false);
    });
  }

  it('stays fresh when only JavaScript under src/ changes (bin.js and the scripts are not compiled)', async () => {
    await stamp();
    await writeFile(join(root, 'src/bin.js'), '// edited\n');
    await writeFile(join(root, 'src/prepare.mjs'), '// edited\n');
    expect(distIsFresh(root)).to.equal(true);
  });

  it('is fresh again when the sources are back to what was built: content decides, not times', async () => {
    await stamp();
    await writeFile(join(root, 'src/model/a.ts'), 'export const a = 3;\n');
    expect(distIsFresh(root)).to.equal(false);
    await writeFile(join(root, 'src/model/a.ts'), TREE['src/model/a.ts'] as string);
    expect(distIsFresh(root)).to.equal(true);
  });

  it('follows a linked directory of sources: a change in it makes dist/ not fresh', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'oingate-stamp-linked-'));
    try {
      await writeFile(join(outside, 'shared.ts'), 'export const shared = 1;\n');
      await symlink(outside, join(root, 'src/linked'), 'dir');
      expect(sourceFiles(root)).to.include('src/linked/shared.ts');
      await stamp();
      expect(distIsFresh(root)).to.equal(true);
      await writeFile(join(outside, 'shared.ts'), 'export const shared = 2;\n');
      expect(distIsFresh(root)).to.equal(false);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('gives the same digest for the same tree wherever it is, and another for other content', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'oingate-stamp-copy-'));
    try {
      for (const path of sourceFiles(root)) {
        await mkdir(join(copy, path, '..'), { recursive: true });
        await writeFile(join(copy, path), TREE[path] as string);
      }
      expect(sourcesDigest(copy)).to.match(/^[0-9a-f]{64}$/).and.equal(sourcesDigest(root));
      await writeFile(join(copy, 'src/model/a.ts'), `${TREE['src/model/a.ts']} `);
      expect(sourcesDigest(copy)).to.not.equal(sourcesDigest(root));
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });
});
