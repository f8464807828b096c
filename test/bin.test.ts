/**
 * src/bin.js in a checkout: the compiled dist/ when it is a build of exactly
 * the sources present, else the sources through tsx. Real `oingate` child
 * processes in a throwaway checkout built with `npm run build` (never this
 * repository's src/ or dist/), told apart by the `build` field of the
 * `oingate listening` log line and by an edit only the sources hold.
 */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { STAMP } from '../src/build-stamp.mjs';
import { builtCheckout } from './support/checkout.ts';

const run = promisify(execFile);

/** This process's environment without OINGATE_* settings or preloads. */
function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('OINGATE_')) delete env[name];
  delete env['NODE_OPTIONS'];
  return { ...env, ...extra };
}

/** Starts `oingate serve` from `dir` on the shipped whitelist and gives the `build` of its listening line. */
function buildServing(dir: string): Promise<unknown> {
  const env = plainEnv({
    OINGATE_LISTEN: '127.0.0.1:0',
    OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
    OINGATE_STORE: `file:${join(dir, 'config', 'whitelist.json')}`,
    OINGATE_LOG_LEVEL: 'info',
  });
  const child = spawn(process.execPath, [join(dir, 'src', 'bin.js'), 'serve'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line in 30 s: ${stderr}${stdout}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`oingate exited with ${code} before listening: ${stderr}${stdout}`)));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const line = stdout
        .split('\n')
        .filter((text) => text.startsWith('{'))
        .map((text) => JSON.parse(text) as Record<string, unknown>)
        .find((entry) => entry['msg'] === 'oingate listening');
      if (line) {
        clearTimeout(timer);
        resolve(line['build']);
      }
    });
  }).finally(() => child.kill('SIGKILL'));
}

/** `oingate help` from `dir`: the usage text. */
async function help(dir: string): Promise<string> {
  return (await run(process.execPath, [join(dir, 'src', 'bin.js'), 'help'], { cwd: dir, env: plainEnv() })).stdout;
}

const USAGE_LINE = 'print the version (also --version)';
const EDITED_LINE = 'print the version (edited after the build)';

describe('the oingate executable in a checkout (src/bin.js)', function () {
  this.timeout(120_000);
  let dir: string;
  let cli: string;
  let original: string;

  before(async () => {
    dir = await builtCheckout();
    cli = join(dir, 'src', 'cli.ts');
    original = await readFile(cli, 'utf8');
    expect(original).to.include(USAGE_LINE);
  });
  afterEach(async () => {
    await writeFile(cli, original);
  });

  it('runs the compiled dist/ when it is a build of exactly the sources present', async () => {
    expect(await buildServing(dir)).to.equal('dist');
  });

  it('runs the sources through tsx, not the stale build, once a source differs from what was built', async () => {
    await writeFile(cli, original.replace(USAGE_LINE, EDITED_LINE));
    const usage = await help(dir);
    expect(usage, 'the edit is what runs').to.include(EDITED_LINE).and.not.include(USAGE_LINE);
    expect(await buildServing(dir)).to.equal('sources');
  });

  it('runs dist/ again once the sources are back to what was built: their content decides, not their times', async () => {
    await writeFile(cli, original.replace(USAGE_LINE, EDITED_LINE));
    await writeFile(cli, original);
    expect(await buildServing(dir)).to.equal('dist');
  });

  it('runs the sources when dist/ carries no stamp', async () => {
    const stamp = join(dir, STAMP);
    await rename(stamp, `${stamp}.away`);
    try {
      expect(await buildServing(dir)).to.equal('sources');
    } finally {
      await rename(`${stamp}.away`, stamp);
    }
  });
});
