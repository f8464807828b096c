/**
 * The build (`npm run build`, and `prepare` on `npm ci`): src/prepare.mjs
 * runs tsc and stamps dist/ with the digest of the sources it compiled, only
 * when tsc succeeded. Run for real in throwaway checkouts; all but one are
 * small, so that tsc takes a second rather than the whole tree's seconds.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { distIsFresh, sourcesDigest, STAMP } from '../src/build-stamp.mjs';
import { builtCheckout, makeCheckout, npmRun } from './support/checkout.ts';

/** The build's script and settings, without the sources. */
const BUILD = ['src/prepare.mjs', 'src/build-stamp.mjs', 'src/tsconfig.build.json', 'tsconfig.json', 'package.json', 'package-lock.json'];

/** A checkout whose only source is `cli.ts`. */
async function small(cli: string, modules = true): Promise<string> {
  const dir = await makeCheckout(BUILD, modules);
  await writeFile(join(dir, 'src', 'cli.ts'), cli);
  return dir;
}

const stampOf = (dir: string) => readFile(join(dir, STAMP), 'utf8');

describe('the build (src/prepare.mjs)', function () {
  this.timeout(120_000);

  it('npm run build compiles the whole tree into dist/ and stamps it with the digest of the sources it compiled', async () => {
    const dir = await builtCheckout();
    expect(existsSync(join(dir, 'dist', 'cli.js'))).to.equal(true);
    expect(existsSync(join(dir, 'dist', 'store', 'whitelist-worker.js'))).to.equal(true);
    expect(await stampOf(dir)).to.equal(`${sourcesDigest(dir)}\n`);
    expect(distIsFresh(dir)).to.equal(true);
  });

  it('prepare (npm ci) builds and stamps the same way', async () => {
    const dir = await small("export const built: string = 'yes';\n");
    const { code, output } = await npmRun(dir, 'prepare');
    expect(code, output).to.equal(0);
    expect(await readFile(join(dir, 'dist', 'cli.js'), 'utf8')).to.include("'yes'");
    expect(await stampOf(dir)).to.equal(`${sourcesDigest(dir)}\n`);
  });

  it('a compile error fails npm run build and leaves dist/ without a stamp, even one that matched', async () => {
    const dir = await small("export const built: number = 'not a number';\n");
    // What a build of exactly these sources would have left: fresh, until the build starts.
    await mkdir(join(dir, 'dist'));
    await writeFile(join(dir, 'dist', 'cli.js'), "export const built = 'before';\n");
    await writeFile(join(dir, STAMP), `${sourcesDigest(dir)}\n`);
    expect(distIsFresh(dir)).to.equal(true);
    const { code, output } = await npmRun(dir, 'build');
    expect(code, output).to.not.equal(0);
    expect(output).to.match(/error TS2322/);
    expect(existsSync(join(dir, STAMP)), 'the stamp').to.equal(false);
    expect(distIsFresh(dir)).to.equal(false);
  });

  it('without typescript (npm ci --omit=dev), prepare skips the build and succeeds, npm run build fails, and neither stamps', async () => {
    const dir = await small("export const built = 'yes';\n", false);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env['NODE_PATH'];
    const prepared = await npmRun(dir, 'prepare', env);
    expect(prepared.code, prepared.output).to.equal(0);
    expect(prepared.output).to.include('typescript is not installed');
    const built = await npmRun(dir, 'build', env);
    expect(built.code, built.output).to.not.equal(0);
    expect(built.output).to.include('typescript is not installed');
    expect(existsSync(join(dir, 'dist')), 'dist/').to.equal(false);
  });
});
