/**
 * `oingate serve` loads a heavy dependency only when its configuration uses
 * it (start-up time): a real child process with a resolve hook that records
 * every module it loads. It runs whichever build src/bin.js picks (the
 * compiled dist/ when it is fresh, else the sources): the listening line
 * says which, and the recorded modules must be that build's.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { eventually, twoTenants, type TenantSpec } from './support/gate.ts';
import { testPki } from './support/pki.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const ROOT_URL = pathToFileURL(ROOT).href;
const HOOK = fileURLToPath(new URL('./support/record-modules.mjs', import.meta.url));

/** What a plain file-store forward-auth start must not load (each takes ~90-230 ms to import). */
const HEAVY = ['ioredis', '@peculiar/asn1-x509', 'pg'];

/** The packages (by node_modules directory) of the module URLs the process resolved. */
function packagesOf(log: string): Set<string> {
  const packages = new Set<string>();
  for (const url of log.split('\n')) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match) packages.add(match[1] as string);
  }
  return packages;
}

interface Started {
  readonly child: ChildProcess;
  readonly adminUrl: string;
  /** The listening line's `build`: which of oingate's builds runs. */
  readonly build: unknown;
  loaded(): Promise<Set<string>>;
  /** Oingate's own modules the process resolved, relative to the repository. */
  own(): Promise<string[]>;
}

describe('oingate serve: heavy dependencies only when configured', function () {
  this.timeout(60_000);
  let dir: string;
  const children: ChildProcess[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-modules-'));
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  async function serve(name: string, tenants: TenantSpec[], env: Record<string, string> = {}): Promise<Started> {
    const whitelist = join(dir, `${name}.json`);
    const log = join(dir, `${name}.modules`);
    await writeFile(whitelist, JSON.stringify({ tenants }));
    await writeFile(log, '');
    const base: NodeJS.ProcessEnv = { ...process.env };
    for (const variable of Object.keys(base)) if (variable.startsWith('OINGATE_')) delete base[variable];
    const child = spawn(process.execPath, ['--import', HOOK, 'src/bin.js', 'serve'], {
      cwd: ROOT,
      env: {
        ...base,
        RECORD_MODULES_TO: log,
        OINGATE_LISTEN: '127.0.0.1:0',
        OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
        OINGATE_STORE: `file:${whitelist}`,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let adminUrl = '';
    let build: unknown;
    await eventually(() => {
      expect(child.exitCode, `oingate exited: ${stderr}${stdout}`).to.equal(null);
      const listening = stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((line) => line['msg'] === 'oingate listening');
      expect(listening, 'the listening line').to.not.equal(undefined);
      adminUrl = listening?.['admin'] as string;
      build = listening?.['build'];
    }, 30_000);
    await eventually(async () => {
      expect((await fetch(`${adminUrl}/readyz`)).status).to.equal(200);
    }, 10_000);
    return {
      child,
      adminUrl,
      build,
      loaded: async () => packagesOf(await readFile(log, 'utf8')),
      own: async () =>
        (await readFile(log, 'utf8'))
          .split('\n')
          .filter((url) => url.startsWith(ROOT_URL) && !url.includes('/node_modules/'))
          .map((url) => url.slice(ROOT_URL.length)),
    };
  }

  it('loads none of ioredis, the ASN.1 parser or pg for a file-store forward-auth start, and koa-body and undici before it listens, so no request waits for them', async () => {
    const gate = await serve('plain', twoTenants());
    const atReady = await gate.loaded();
    expect([...atReady], 'the hook records what is loaded').to.include.members(['koa', 'pino', 'prom-client']);
    // What is checked is the code that ran, compiled or not.
    const own = await gate.own();
    const [runs, other] = gate.build === 'dist' ? ['dist/service.js', /^src\/.*\.ts$/] : ['src/service.ts', /^dist\//];
    expect(gate.build, 'the listening line names the build').to.be.oneOf(['dist', 'sources']);
    expect(own, `the ${String(gate.build)} build's modules`).to.include(runs);
    expect(own.filter((path) => other.test(path)), "the other build's modules").to.deep.equal([]);
    for (const name of HEAVY) expect(atReady.has(name), `${name} loaded`).to.equal(false);
    // Imported while the first whitelist loaded: a first POST /reload, or a
    // tenant given a jwksUri later, must not pause the loop for an import.
    expect(atReady.has('koa-body'), 'koa-body loaded before the listeners opened').to.equal(true);
    expect(atReady.has('undici'), 'undici loaded before the listeners opened').to.equal(true);

    const reload = await fetch(`${gate.adminUrl}/reload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(reload.status).to.equal(200);
    gate.child.kill('SIGTERM');
  });

  it('loads ioredis for a Redis URL and the ASN.1 parser for CRLs (and undici, as always)', async () => {
    const pki = await testPki();
    const gate = await serve('configured', twoTenants(), {
      // Nothing listens there: the limiter counts locally, but its module is loaded.
      OINGATE_RATE_LIMIT_REDIS: 'redis://127.0.0.1:1/0',
      OINGATE_UPSTREAM: 'http://127.0.0.1:1',
      OINGATE_TRUSTED_PROXIES: '127.0.0.1/32',
      OINGATE_CLIENT_CERT_HEADER: 'x-client-cert',
      OINGATE_TLS_CLIENT_CA: pki.caBundleFile,
      OINGATE_TLS_CRL: pki.crlFile,
    });
    const loaded = await gate.loaded();
    for (const name of ['ioredis', 'undici', '@peculiar/asn1-x509']) expect(loaded.has(name), `${name} loaded`).to.equal(true);
    gate.child.kill('SIGTERM');
  });
});
