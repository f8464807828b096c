/**
 * The package as an API installs it: `npm pack`, unpacked into an app's
 * node_modules, imported by a plain-node Koa app (no tsx) that embeds the
 * gate. Checked over HTTP, against the child process, never in-process.
 */
import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeTenants } from './bench/lib/fixtures.ts';
import { call, eventually, OIN_A, OIN_B, send, tokenFor, twoTenants, writeWhitelistFile } from './support/gate.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

// The app an API team would write, using only what the package exports.
const APP = `
import Koa from 'koa';
import { createHash } from 'node:crypto';
import { createGate } from 'oingate';

const gate = await createGate({ store: process.env.APP_STORE, logLevel: 'silent' });
let hits = 0;
const app = new Koa();
app.use(async (ctx, next) => {
  // The app's own endpoints, mounted before the gate.
  if (ctx.path === '/__hits') { ctx.body = { hits, readiness: gate.readiness() }; return; }
  if (ctx.path === '/__close') {
    ctx.set('connection', 'close');
    ctx.body = { closing: true };
    ctx.res.once('finish', async () => {
      await gate.close();
      server.close();
      server.closeIdleConnections();
    });
    return;
  }
  await next();
});
app.use(gate.middleware);
app.use((ctx) => {
  hits++;
  const raw = ctx.request.rawBody;
  ctx.body = {
    oin: ctx.state.oingate.oin,
    kid: ctx.state.oingate.kid,
    body: ctx.request.body ?? null,
    rawIsBuffer: Buffer.isBuffer(raw),
    rawSha256: raw ? createHash('sha256').update(raw).digest('hex') : null,
  };
});
const server = app.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ url: 'http://127.0.0.1:' + server.address().port }));
});
`;

interface AppProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

function startApp(dir: string, store: string): Promise<AppProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, APP_STORE: store };
  delete env['NODE_OPTIONS']; // plain node: nothing may preload tsx
  const child = spawn(process.execPath, ['app.mjs'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`app did not start: ${stderr}`)), 15_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, url: (JSON.parse(line) as { url: string }).url, exited, stderr: () => stderr });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`app exited with ${code} before listening: ${stderr}`));
    });
  });
}

async function hits(app: AppProcess): Promise<number> {
  return ((await send(app.url, { method: 'GET', path: '/__hits' })).json() as { hits: number }).hits;
}

/** Asks the app to close the gate and its server, then waits for the process to end by itself. */
async function closeAndWait(app: AppProcess): Promise<number | null> {
  const res = await send(app.url, { method: 'POST', path: '/__close' });
  expect(res.status).to.equal(200);
  const timeout = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 8_000).unref());
  const outcome = await Promise.race([app.exited, timeout]);
  if (outcome === 'hung') app.child.kill('SIGKILL');
  expect(outcome, 'the process exits by itself once the gate and server are closed: no open handles').to.not.equal('hung');
  return outcome as number | null;
}

describe('the packed package, embedded by a plain-node Koa app', function () {
  this.timeout(240_000);
  let work: string;
  let appDir: string;
  let whitelist: string;
  let tarEntries: string[];

  before(async () => {
    await mkdir(join(ROOT, '.tmp'), { recursive: true });
    // Under the repository, so that the unpacked package's dependencies resolve to its node_modules.
    work = await mkdtemp(join(ROOT, '.tmp', 'package-'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    const packed = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarEntries = packed[0]!.files.map((file) => file.path);
    appDir = join(work, 'app');
    const target = join(appDir, 'node_modules', 'oingate');
    await mkdir(target, { recursive: true });
    await run('tar', ['-xzf', join(work, packed[0]!.filename), '-C', target, '--strip-components=1']);
    await writeFile(join(appDir, 'app.mjs'), APP);
    whitelist = join(appDir, 'whitelist.json');
    await writeWhitelistFile(whitelist, twoTenants().slice(0, 1));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('ships the compiled library with its types and the bin, not the sources or the tests', () => {
    expect(tarEntries).to.include.members(['dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'src/bin.js', 'package.json']);
    expect(tarEntries.filter((path) => path.startsWith('test/'))).to.deep.equal([]);
    expect(tarEntries.filter((path) => path.startsWith('src/') && path !== 'src/bin.js')).to.deep.equal([]);
    // Written by the build npm pack ran (prepare), but a stamp of sources that are not shipped.
    expect(tarEntries).to.not.include('dist/.sources-sha256');
  });

  it('runs the installed bin with plain node', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env['NODE_OPTIONS'];
    const { stdout } = await run(process.execPath, [join(appDir, 'node_modules', 'oingate', 'src', 'bin.js'), 'help'], { cwd: appDir, env });
    expect(stdout).to.match(/oingate serve/);
  });

  it('decides over HTTP: refusals never reach the handler, the exact body does, reloads land, close leaves nothing open', async () => {
    const app = await startApp(appDir, `file:${whitelist}`);
    try {
      for (const [status, request] of [
        [401, () => call(app.url, { oin: OIN_A }, undefined)],
        [400, () => call(app.url, '{"oin":', tokenFor(OIN_A))],
        [403, () => call(app.url, { oin: OIN_B }, tokenFor(OIN_B))],
      ] as const) {
        const res = await request();
        expect(res.status).to.equal(status);
        expect(res.json()['requestId']).to.equal(res.headers['x-request-id']);
      }
      expect(await hits(app), 'no refusal reached the handler').to.equal(0);

      const raw = Buffer.from(`{"oin": "${OIN_A}" ,  "note":"caf\u00e9 \\u00e9"}\n`, 'utf8');
      const allowed = await send(app.url, { headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenFor(OIN_A)}` }, body: raw });
      expect(allowed.status, allowed.text).to.equal(200);
      expect(allowed.json()).to.deep.equal({
        oin: OIN_A,
        kid: 'a1',
        body: { oin: OIN_A, note: 'caf\u00e9 \u00e9' },
        rawIsBuffer: true,
        rawSha256: createHash('sha256').update(raw).digest('hex'),
      });
      expect(await hits(app)).to.equal(1);

      // Tenant B arrives by rewriting the file: no restart.
      await writeWhitelistFile(whitelist, twoTenants());
      await eventually(async () => {
        expect((await call(app.url, { oin: OIN_B }, tokenFor(OIN_B))).status).to.equal(200);
      }, 10_000);
    } finally {
      expect(await closeAndWait(app)).to.equal(0);
    }
    expect(app.stderr()).to.equal('');
  });

  it('reads a whitelist file of over 1 MiB in its compiled worker thread, and still exits by itself', async () => {
    expect(tarEntries).to.include('dist/store/whitelist-worker.js');
    const large = join(appDir, 'large.json');
    const tenants = [...twoTenants(), ...makeTenants(6_000)];
    await writeWhitelistFile(large, tenants);
    expect((await stat(large)).size, 'bytes, past the size read in the thread').to.be.above(2 ** 20);
    const app = await startApp(appDir, `file:${large}`);
    try {
      await eventually(async () => {
        const state = (await send(app.url, { method: 'GET', path: '/__hits' })).json() as { readiness: { tenants: number; lastError: string | null } };
        expect(state.readiness.lastError).to.equal(null);
        expect(state.readiness.tenants).to.equal(tenants.length);
      }, 20_000);
      expect((await call(app.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    } finally {
      expect(await closeAndWait(app)).to.equal(0);
    }
    expect(app.stderr()).to.equal('');
  });

  it('answers 503 while the store is down at start, instead of failing to start', async () => {
    const missing = join(appDir, 'not-yet.json');
    const app = await startApp(appDir, `file:${missing}`);
    try {
      const res = await call(app.url, { oin: OIN_A }, tokenFor(OIN_A));
      expect(res.status).to.equal(503);
      expect(res.json()['error']).to.equal('unavailable');
      const state = (await send(app.url, { method: 'GET', path: '/__hits' })).json() as { readiness: { ready: boolean } };
      expect(state.readiness.ready).to.equal(false);
      await writeWhitelistFile(missing, twoTenants());
      await eventually(async () => {
        expect((await call(app.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
      }, 10_000);
    } finally {
      expect(await closeAndWait(app)).to.equal(0);
    }
  });

  it('leaves no build output in the package sources', async () => {
    // dist/ is built output: ignored by git, rebuilt by `npm ci` through `prepare`.
    const ignored = await run('git', ['check-ignore', 'dist/index.js'], { cwd: ROOT });
    expect(ignored.stdout.trim()).to.equal('dist/index.js');
    expect(await readdir(join(appDir, 'node_modules', 'oingate', 'dist'))).to.include('index.js');
  });
});
