import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { generateKeyPairSync } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTenants, whitelistText } from './bench/lib/fixtures.ts';
import { call, eventually, send } from './support/gate.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

const OIN_HS = '00000001000000000001';
const OIN_RS = '00000001000000000002';
const OIN_DEFAULT = '00000001234567890000';
const SECRET_1 = 'cli-test-secret-one-0123456789abcdefgh';
const SECRET_2 = 'cli-test-secret-two-0123456789abcdefgh';
const SECRET_OFF = 'cli-test-secret-off-0123456789abcdefgh';
const CLAIM_ENV = { OINGATE_TENANT_CLAIM: 'tenant', OINGATE_ISSUER: 'https://issuer.example', OINGATE_AUDIENCE: 'the-api' };

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

/** The environment of a child: this process's, minus every OINGATE_* variable, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const copy: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(copy)) if (name.startsWith('OINGATE_')) delete copy[name];
  return { ...copy, OINGATE_LOG_LEVEL: 'warn', ...env };
}

/** Starts `oingate ARGS`; a tracked (long-running) child is killed after its test, whatever happened. */
function start(args: string[], env: Record<string, string>, track = false): ChildProcess {
  const child = spawn(process.execPath, ['src/bin.js', ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  if (track) {
    children.add(child);
    child.once('exit', () => children.delete(child));
  }
  return child;
}

function finished(child: ChildProcess): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs `oingate ARGS` to completion. */
function run(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return finished(start(args, env));
}

/**
 * One-shot runs are started ahead, a few at a time, so the tests that read
 * them do not each wait for a Node start-up in turn.
 */
const ahead = new Map<string, Promise<Result>>();
let slots = 4;
const waiting: Array<() => void> = [];
async function pooled(args: string[], env: Record<string, string>): Promise<Result> {
  if (slots === 0) await new Promise<void>((resolve) => waiting.push(resolve));
  else slots--;
  try {
    return await run(args, env);
  } finally {
    const next = waiting.shift();
    if (next) next();
    else slots++;
  }
}
function runAhead(args: string[], env: Record<string, string> = {}): void {
  const key = JSON.stringify([args, env]);
  if (!ahead.has(key)) {
    const promise = pooled(args, env);
    promise.catch(() => undefined);
    ahead.set(key, promise);
  }
}
/** The result of `oingate ARGS`, started ahead when it was announced with runAhead. */
function outcome(args: string[], env: Record<string, string> = {}): Promise<Result> {
  runAhead(args, env);
  return ahead.get(JSON.stringify([args, env])) as Promise<Result>;
}

/** Free loopback ports: listen on 0, note the port, close. */
async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

function expectOneLineFailure(result: Result, ...mentions: string[]): void {
  expect(result.code, result.stderr).to.be.a('number').and.not.equal(0);
  expect(result.stdout).to.equal('');
  expect(lines(result.stderr), result.stderr).to.have.length(1);
  for (const mention of mentions) expect(result.stderr).to.include(mention);
}

interface Decoded {
  header: jwt.JwtHeader;
  payload: jwt.JwtPayload;
}

function verified(token: string, secret: string, alg: jwt.Algorithm): Decoded {
  return jwt.verify(token, secret, { algorithms: [alg], complete: true }) as unknown as Decoded;
}

describe('command line (src/bin.js)', () => {
  let dir: string;
  let store: string;
  let threeErrors: string;
  let invalidJson: string;
  let defaultStyle: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-cli-'));
    store = join(dir, 'store.json');
    threeErrors = join(dir, 'three-errors.json');
    invalidJson = join(dir, 'invalid.json');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(
      store,
      JSON.stringify(
        {
          tenants: [
            {
              oin: OIN_HS,
              name: 'HS tenant',
              cidrs: ['127.0.0.0/8', '::1/128'],
              keys: [
                { kid: 'hs-off', alg: 'HS256', secret: SECRET_OFF, enabled: false },
                { kid: 'hs-1', alg: 'HS256', secret: SECRET_1 },
                { kid: 'hs-2', alg: 'HS512', secret: SECRET_2 },
              ],
            },
            {
              oin: OIN_RS,
              name: 'RS tenant',
              cidrs: ['127.0.0.0/8'],
              keys: [{ kid: 'rs-1', alg: 'RS256', publicKey: rsa.publicKey.export({ type: 'spki', format: 'pem' }) }],
            },
          ],
        },
        null,
        2,
      ),
    );
    await writeFile(
      threeErrors,
      JSON.stringify(
        {
          tenants: [
            {
              oin: OIN_HS,
              cidrs: ['127.0.0.0/8', '10.0.0.1/8'],
              keys: [{ kid: 'short', alg: 'HS256', secret: 'too-short-secret' }],
            },
            { oin: 'not-an-oin', cidrs: ['127.0.0.0/8'] },
          ],
        },
        null,
        2,
      ),
    );
    await writeFile(invalidJson, '{\n  "tenants": [\n    { "oin": "00000001000000000001", }\n  ]\n}\n');
    defaultStyle = join(dir, 'default', 'whitelist.json');
    await mkdir(join(dir, 'default'));
    await copyFile(join(ROOT, 'config', 'whitelist.json'), defaultStyle);

    // Start the one-shot runs the tests below read, a few at a time.
    const storeEnv = { OINGATE_STORE: `file:${store}` };
    runAhead(['check', store]);
    runAhead(['check', threeErrors]);
    runAhead(['check', invalidJson]);
    runAhead(['check', join(dir, 'missing.json')]);
    runAhead(['check'], storeEnv);
    runAhead(['check'], { OINGATE_STORE: `file:${threeErrors}` });
    runAhead(['token', '--oin', OIN_HS], storeEnv);
    runAhead(['token', '--oin', OIN_HS, '--kid', 'hs-2', '--ttl', '15m'], storeEnv);
    runAhead(['token', '--oin', OIN_HS, '--ttl', '90'], { ...storeEnv, ...CLAIM_ENV });
    runAhead(['token', '--oin', OIN_HS, '--ttl', '2d'], storeEnv);
    runAhead(['token', '--oin', OIN_HS, '--ttl', '15m'], { ...storeEnv, OINGATE_MAX_TOKEN_LIFETIME: '600' });
    runAhead(['token', '--oin', OIN_HS, '--ttl', 'soon'], storeEnv);
    runAhead(['token'], storeEnv);
    runAhead(['token', '--oin', '00000009999999999999'], storeEnv);
    runAhead(['token', '--oin', OIN_HS, '--kid', 'nope'], storeEnv);
    runAhead(['token', '--oin', OIN_HS, '--kid', 'hs-off'], storeEnv);
    runAhead(['token', '--oin', OIN_RS], storeEnv);
    runAhead(['token', '--oin', OIN_RS, '--kid', 'rs-1'], storeEnv);
    runAhead(['serve'], { OINGATE_CLOCK_TOLERANCE: '999', OINGATE_STORE: `file:${store}` });
    runAhead(['token', '--oin', OIN_DEFAULT], { OINGATE_STORE: `file:${defaultStyle}` });
  });

  afterEach(() => {
    for (const child of children) child.kill('SIGKILL');
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('package.json', () => {
    it('npm start runs `node src/bin.js serve` and the oingate bin is src/bin.js', async () => {
      const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
        bin: Record<string, string>;
      };
      expect(pkg.scripts['start']).to.equal('node src/bin.js serve');
      expect(pkg.bin['oingate']).to.equal('src/bin.js');
      expect(await readFile(join(ROOT, 'src', 'bin.js'), 'utf8')).to.match(/^#!\/usr\/bin\/env node\n/);
    });
  });

  describe('oingate check', () => {
    it('exits 0 with a one-line summary for a good file', async () => {
      const result = await outcome(['check', store]);
      expect(result.code, result.stderr).to.equal(0);
      expect(lines(result.stdout)).to.have.length(1);
      expect(result.stdout).to.include(store).and.include('ok').and.include('2 tenant(s)').and.include('3 CIDR(s)').and.include('4 key(s)');
      expect(result.stdout).to.match(/version [0-9a-f]{16}/);
      expect(result.stderr).to.equal('');
    });

    it('exits 1 and lists all 3 errors of a file, each with its place', async () => {
      const result = await outcome(['check', threeErrors]);
      expect(result.code).to.equal(1);
      expect(result.stdout).to.equal('');
      expect(result.stderr).to.include(threeErrors).and.include('3 error(s)');
      const issueLines = lines(result.stderr).filter((line) => line.startsWith('  '));
      expect(issueLines).to.have.length(3);
      expect(issueLines[0]).to.include('tenants[0].cidrs[1]').and.include('10.0.0.1/8');
      expect(issueLines[1]).to.include('tenants[0].keys[0]').and.include('bytes');
      expect(issueLines[2]).to.include('tenants[1].oin').and.include('not-an-oin');
      expect(result.stderr).to.not.include('too-short-secret');
    });

    it('exits 1 on invalid JSON, naming line and column', async () => {
      const result = await outcome(['check', invalidJson]);
      expect(result.code).to.equal(1);
      expect(lines(result.stderr)).to.have.length(1);
      expect(result.stderr).to.include(invalidJson).and.match(/line 3 column \d+/);
    });

    it('exits 1 on a missing file', async () => {
      const result = await outcome(['check', join(dir, 'missing.json')]);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.include('ENOENT');
    });

    it('checks the configured store when no FILE is given', async () => {
      const good = await outcome(['check'], { OINGATE_STORE: `file:${store}` });
      expect(good.code, good.stderr).to.equal(0);
      expect(good.stdout).to.include(store).and.include('2 tenant(s)');
      const bad = await outcome(['check'], { OINGATE_STORE: `file:${threeErrors}` });
      expect(bad.code).to.equal(1);
      expect(bad.stderr).to.include('tenants[0].cidrs[1]').and.include('tenants[0].keys[0]').and.include('tenants[1].oin');
    });
  });

  describe('oingate token', () => {
    const env = (): Record<string, string> => ({ OINGATE_STORE: `file:${store}` });

    it("prints a JWT signed with the tenant's first usable HS key, carrying the OIN, kid and a 1 h lifetime", async () => {
      const result = await outcome(['token', '--oin', OIN_HS], env());
      expect(result.code, result.stderr).to.equal(0);
      const token = result.stdout.trim();
      expect(lines(result.stdout)).to.have.length(1);
      const { header, payload } = verified(token, SECRET_1, 'HS256');
      expect(header.kid).to.equal('hs-1');
      expect(header.alg).to.equal('HS256');
      expect(payload['oin']).to.equal(OIN_HS);
      expect(payload.iat).to.be.a('number');
      expect((payload.exp as number) - (payload.iat as number)).to.equal(3600);
      expect(payload.iat as number).to.be.closeTo(Date.now() / 1000, 60);
      expect(() => verified(token, SECRET_OFF, 'HS256')).to.throw();
    });

    it('puts a random jti of 128 bits or more in every token and prints it on stderr, the token alone on stdout', async () => {
      const results = await Promise.all([1, 2, 3].map(() => run(['token', '--oin', OIN_HS], env())));
      const jtis = results.map((result) => {
        expect(result.code, result.stderr).to.equal(0);
        expect(lines(result.stdout)).to.have.length(1);
        const { payload } = verified(result.stdout.trim(), SECRET_1, 'HS256');
        expect(payload.jti).to.be.a('string').and.match(/^[A-Za-z0-9_-]{22,}$/);
        expect(result.stderr).to.equal(`jti: ${payload.jti}\n`);
        return payload.jti;
      });
      expect(new Set(jtis).size).to.equal(3);
    });

    it('refuses --note with the file store, which keeps no record', async () => {
      const result = await run(['token', '--oin', OIN_HS, '--note', 'lost'], env());
      expectOneLineFailure(result, '--note', 'PostgreSQL');
      expect(result.code).to.equal(2);
    });

    it('refuses oingate tokens with the file store, with exit 1 and one clear line', async () => {
      for (const args of [['tokens'], ['tokens', '--json']]) {
        const result = await run(args, env());
        expectOneLineFailure(result, 'PostgreSQL', 'file store keeps no record');
        expect(result.code).to.equal(1);
      }
    });

    it('honours --kid and --ttl 15m', async () => {
      const result = await outcome(['token', '--oin', OIN_HS, '--kid', 'hs-2', '--ttl', '15m'], env());
      expect(result.code, result.stderr).to.equal(0);
      const { header, payload } = verified(result.stdout.trim(), SECRET_2, 'HS512');
      expect(header.kid).to.equal('hs-2');
      expect(payload['oin']).to.equal(OIN_HS);
      expect((payload.exp as number) - (payload.iat as number)).to.equal(900);
    });

    it('puts the OIN in OINGATE_TENANT_CLAIM and adds issuer and audience when set', async () => {
      const result = await outcome(['token', '--oin', OIN_HS, '--ttl', '90'], { ...env(), ...CLAIM_ENV });
      expect(result.code, result.stderr).to.equal(0);
      const { payload } = verified(result.stdout.trim(), SECRET_1, 'HS256');
      expect(payload['tenant']).to.equal(OIN_HS);
      expect(payload['oin']).to.equal(undefined);
      expect(payload.iss).to.equal('https://issuer.example');
      expect(payload.aud).to.equal('the-api');
      expect((payload.exp as number) - (payload.iat as number)).to.equal(90);
    });

    it("uses the tenant's own issuer and audience instead of the global ones", async () => {
      const own = join(dir, 'own-issuer.json');
      await writeFile(
        own,
        JSON.stringify({
          tenants: [
            {
              oin: OIN_HS,
              cidrs: ['127.0.0.0/8'],
              issuer: 'https://tenant-idp.example',
              audience: 'tenant-api',
              keys: [{ kid: 'hs-1', alg: 'HS256', secret: SECRET_1 }],
            },
          ],
        }),
      );
      const result = await outcome(['token', '--oin', OIN_HS], { OINGATE_STORE: `file:${own}`, ...CLAIM_ENV });
      expect(result.code, result.stderr).to.equal(0);
      const { payload } = verified(result.stdout.trim(), SECRET_1, 'HS256');
      expect(payload.iss).to.equal('https://tenant-idp.example');
      expect(payload.aud).to.equal('tenant-api');
    });

    it('refuses a --ttl over the maximum token lifetime with one line', async () => {
      expectOneLineFailure(await outcome(['token', '--oin', OIN_HS, '--ttl', '2d'], env()), 'OINGATE_MAX_TOKEN_LIFETIME');
      expectOneLineFailure(
        await outcome(['token', '--oin', OIN_HS, '--ttl', '15m'], { ...env(), OINGATE_MAX_TOKEN_LIFETIME: '600' }),
        'OINGATE_MAX_TOKEN_LIFETIME',
      );
    });

    it('refuses a malformed --ttl and a missing --oin with one line', async () => {
      expectOneLineFailure(await outcome(['token', '--oin', OIN_HS, '--ttl', 'soon'], env()), '--ttl');
      expectOneLineFailure(await outcome(['token'], env()), '--oin');
    });

    it('refuses an unknown OIN with one line naming it', async () => {
      expectOneLineFailure(await outcome(['token', '--oin', '00000009999999999999'], env()), '00000009999999999999');
    });

    it('refuses an unknown kid and a disabled key with one line naming the kid', async () => {
      expectOneLineFailure(await outcome(['token', '--oin', OIN_HS, '--kid', 'nope'], env()), '"nope"');
      expectOneLineFailure(await outcome(['token', '--oin', OIN_HS, '--kid', 'hs-off'], env()), 'hs-off');
    });

    it('refuses an RS256-only tenant with one line (oingate holds no private key)', async () => {
      expectOneLineFailure(await outcome(['token', '--oin', OIN_RS], env()), OIN_RS, 'HS');
      expectOneLineFailure(await outcome(['token', '--oin', OIN_RS, '--kid', 'rs-1'], env()), 'rs-1', 'RS256');
    });
  });

  describe('oingate version', () => {
    it('prints the package.json version for `version` and `--version`, with no settings needed', async () => {
      const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
      for (const args of [['version'], ['--version']]) {
        // A bad setting would stop every other command; the version needs none.
        const result = await run(args, { OINGATE_LISTEN: 'not-an-address' });
        expect(result.code, result.stderr).to.equal(0);
        expect(result.stdout).to.equal(`${pkg.version}\n`);
        expect(result.stderr).to.equal('');
      }
    });
  });

  describe('oingate check warnings and key choice', () => {
    const DAY = 86_400_000;
    const at = (days: number) => new Date(Date.now() + days * DAY).toISOString();
    let warned: string;
    let choice: string;

    before(async () => {
      warned = join(dir, 'warned.json');
      choice = join(dir, 'choice.json');
      await writeFile(
        warned,
        JSON.stringify({
          tenants: [
            {
              oin: OIN_HS,
              cidrs: ['127.0.0.0/8'],
              keys: [
                { kid: 'expired', alg: 'HS256', secret: SECRET_1, expiresAt: at(-2) },
                { kid: 'soon', alg: 'HS256', secret: SECRET_1, expiresAt: at(3) },
                { kid: 'later', alg: 'HS256', secret: SECRET_1, expiresAt: at(30) },
                { kid: 'off-expired', alg: 'HS256', secret: SECRET_1, enabled: false, expiresAt: at(-2) },
                { kid: 'forever', alg: 'HS256', secret: SECRET_1 },
              ],
            },
            { oin: OIN_RS, cidrs: ['127.0.0.0/8'], jwksUri: 'https://idp.example/jwks.json' },
          ],
        }),
      );
      await writeFile(
        choice,
        JSON.stringify({
          tenants: [
            {
              oin: OIN_HS,
              cidrs: ['127.0.0.0/8'],
              keys: [
                { kid: 'ending', alg: 'HS256', secret: SECRET_OFF, expiresAt: at(1) },
                { kid: 'not-yet', alg: 'HS256', secret: SECRET_OFF, notBefore: at(1) },
                { kid: 'lasting', alg: 'HS256', secret: SECRET_1, expiresAt: at(60) },
                { kid: 'mid', alg: 'HS256', secret: SECRET_OFF, expiresAt: at(20) },
              ],
            },
            {
              oin: OIN_RS,
              cidrs: ['127.0.0.0/8'],
              keys: [
                { kid: 'dated', alg: 'HS256', secret: SECRET_OFF, expiresAt: at(365) },
                { kid: 'undated', alg: 'HS384', secret: SECRET_2 },
              ],
            },
          ],
        }),
      );
    });

    it('exits 0 and warns about expired and soon-expiring keys and a JWKS tenant without any audience', async () => {
      const result = await run(['check', warned]);
      expect(result.code, result.stderr).to.equal(0);
      expect(lines(result.stdout)).to.have.length(1);
      expect(result.stdout).to.include('ok');
      const warnings = lines(result.stderr);
      expect(warnings).to.have.length(3);
      expect(warnings[0]).to.match(new RegExp(`^warning: tenant ${OIN_HS} key "expired" expired at `));
      expect(warnings[1]).to.match(new RegExp(`^warning: tenant ${OIN_HS} key "soon" expires at .*within 14 days`));
      expect(warnings[2]).to.match(new RegExp(`^warning: tenant ${OIN_RS} takes keys from its JWKS but has no audience`)).and.include('OINGATE_AUDIENCE');
      expect(result.stderr).not.to.include(SECRET_1);
    });

    it('does not warn about the JWKS tenant when OINGATE_AUDIENCE is set', async () => {
      const result = await run(['check', warned], { OINGATE_AUDIENCE: 'the-api' });
      expect(result.code, result.stderr).to.equal(0);
      expect(lines(result.stderr)).to.have.length(2);
      expect(result.stderr).not.to.include('JWKS');
    });

    it('signs, without --kid, with the usable HS key that stays usable longest', async () => {
      const env = { OINGATE_STORE: `file:${choice}` };
      const [dated, undated] = await Promise.all([run(['token', '--oin', OIN_HS], env), run(['token', '--oin', OIN_RS], env)]);
      expect(dated.code, dated.stderr).to.equal(0);
      expect(verified(dated.stdout.trim(), SECRET_1, 'HS256').header.kid).to.equal('lasting');
      // A key without an expiry outlasts any that has one.
      expect(undated.code, undated.stderr).to.equal(0);
      expect(verified(undated.stdout.trim(), SECRET_2, 'HS384').header.kid).to.equal('undated');
    });
  });

  describe('oingate serve', () => {
    it('refuses a bad setting with a non-zero exit and ONE line on stderr naming the variable', async () => {
      const result = await outcome(['serve'], { OINGATE_CLOCK_TOLERANCE: '999', OINGATE_STORE: `file:${store}` });
      expectOneLineFailure(result, 'OINGATE_CLOCK_TOLERANCE', '999');
    });

    it('refuses to start with an OINGATE_* variable it does not know (a typo of a setting), with exit 2 and one line naming it', async () => {
      const result = await outcome(['serve'], { OINGATE_REQUIRE_JIT: 'true', OINGATE_STORE: `file:${store}` });
      expect(result.code).to.equal(2);
      expectOneLineFailure(result, 'OINGATE_REQUIRE_JIT');
    });

    it('exits non-zero with one line, instead of hanging, when its public port is taken', async function () {
      this.timeout(20_000);
      const busy = createNetServer();
      await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
      const taken = (busy.address() as AddressInfo).port;
      try {
        const started = Date.now();
        const result = await run(['serve'], {
          OINGATE_LISTEN: `127.0.0.1:${taken}`,
          OINGATE_ADMIN_LISTEN: `127.0.0.1:${await freePort()}`,
          OINGATE_STORE: `file:${store}`,
          OINGATE_LOG_LEVEL: 'silent',
        });
        expect(result.code, result.stderr).to.equal(1);
        expect(result.stderr).to.include('EADDRINUSE');
        expect(lines(result.stderr)).to.have.length(1);
        expect(Date.now() - started, 'ms until it exited').to.be.below(10_000);
      } finally {
        await new Promise<void>((resolve) => busy.close(() => resolve()));
      }
    });

    it('exits 0 on a SIGTERM that arrives while start-up still waits for the database', async function () {
      this.timeout(30_000);
      // A "database" that accepts connections and never answers: start-up waits on it.
      const sockets = new Set<import('node:net').Socket>();
      const silent = createNetServer((socket) => sockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const dbPort = (silent.address() as AddressInfo).port;
      try {
        const child = start(['serve'], {
          OINGATE_LISTEN: `127.0.0.1:${await freePort()}`,
          OINGATE_ADMIN_LISTEN: `127.0.0.1:${await freePort()}`,
          OINGATE_STORE: `postgres://oingate@127.0.0.1:${dbPort}/gate`,
        }, true);
        const exited = finished(child);
        await eventually(() => void expect(sockets.size, 'start-up is talking to the database').to.be.at.least(1), 10_000, 20);
        child.kill('SIGTERM');
        const result = await exited;
        expect(result.code, result.stderr).to.equal(0);
        expect(result.signal).to.equal(null);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      }
    });

    it('accepts a token made by `oingate token` on the default-style config, then exits 0 on SIGTERM', async () => {
      const made = await outcome(['token', '--oin', OIN_DEFAULT], { OINGATE_STORE: `file:${defaultStyle}` });
      expect(made.code, made.stderr).to.equal(0);
      const token = made.stdout.trim();

      const [port, adminPort] = [await freePort(), await freePort()];
      const child = start(
        ['serve'],
        { OINGATE_LISTEN: `127.0.0.1:${port}`, OINGATE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`, OINGATE_STORE: `file:${defaultStyle}` },
        true,
      );
      const exited = finished(child);
      const url = `http://127.0.0.1:${port}`;
      await eventually(async () => {
        const ready = await send(`http://127.0.0.1:${adminPort}`, { method: 'GET', path: '/readyz' });
        expect(ready.status).to.equal(200);
      }, 15_000, 50);

      const allowed = await call(url, { oin: OIN_DEFAULT }, token);
      expect(allowed.status, allowed.text).to.equal(200);
      expect(allowed.headers['x-authenticated-oin']).to.equal(OIN_DEFAULT);
      const tampered = await call(url, { oin: OIN_DEFAULT }, token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA'));
      expect(tampered.status).to.equal(401);

      child.kill('SIGTERM');
      const result = await exited;
      expect(result.code, result.stderr).to.equal(0);
    });

    it('serves a file of over 1 MiB, read in its worker thread from the sources, at the version `oingate check` finds', async function () {
      this.timeout(60_000);
      const large = join(dir, 'large.json');
      await writeFile(large, whitelistText(makeTenants(6_000)));
      const checked = await run(['check', large]);
      expect(checked.code, checked.stderr).to.equal(0);
      const version = /version ([0-9a-f]+)$/m.exec(checked.stdout)?.[1];
      expect(version, checked.stdout).to.be.a('string');

      const [port, adminPort] = [await freePort(), await freePort()];
      const child = start(['serve'], { OINGATE_LISTEN: `127.0.0.1:${port}`, OINGATE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`, OINGATE_STORE: `file:${large}` }, true);
      const exited = finished(child);
      await eventually(async () => {
        const ready = await send(`http://127.0.0.1:${adminPort}`, { method: 'GET', path: '/readyz' });
        expect(ready.status, ready.text).to.equal(200);
        expect(ready.json()['version']).to.equal(version);
        expect(ready.json()['tenants']).to.equal(6_000);
      }, 20_000, 50);
      child.kill('SIGTERM');
      const result = await exited;
      expect(result.code, result.stderr).to.equal(0);
    });

    describe('graceful stop', () => {
      let upstream: Server;
      let upstreamPort: number;
      const received: IncomingMessage[] = [];

      before(async () => {
        upstream = createServer((req, res) => {
          received.push(req);
          req.resume();
          setTimeout(() => {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.end(`upstream saw ${String(req.headers['x-authenticated-oin'])}`);
            // Long enough that the refusal of new connections is seen first even on a busy machine.
          }, 2_000);
        });
        await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
        upstreamPort = (upstream.address() as AddressInfo).port;
      });
      after(async () => {
        upstream.closeAllConnections();
        await new Promise<void>((resolve) => upstream.close(() => resolve()));
      });

      it('on SIGTERM stops accepting, completes the in-flight request with 200, and exits 0 shortly after', async () => {
        const [port, adminPort] = [await freePort(), await freePort()];
        const child = start(['serve'], {
          OINGATE_LISTEN: `127.0.0.1:${port}`,
          OINGATE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
          OINGATE_STORE: `file:${store}`,
          OINGATE_UPSTREAM: `http://127.0.0.1:${upstreamPort}`,
        }, true);
        let exitedAt = 0;
        const exited = finished(child).then((result) => {
          exitedAt = Date.now();
          return result;
        });
        const url = `http://127.0.0.1:${port}`;
        await eventually(async () => {
          const health = await send(`http://127.0.0.1:${adminPort}`, { method: 'GET', path: '/healthz' });
          expect(health.status).to.equal(200);
        }, 15_000, 50);

        const token = jwt.sign({ oin: OIN_HS }, SECRET_1, { algorithm: 'HS256', keyid: 'hs-1', expiresIn: 600 });
        let answeredAt = 0;
        const inFlight = call(url, { oin: OIN_HS }, token).then((res) => {
          answeredAt = Date.now();
          return res;
        });
        await eventually(() => {
          expect(received).to.have.length(1);
        }, 5_000, 10);

        child.kill('SIGTERM');
        // New connections are refused while the in-flight request is still running.
        await eventually(async () => {
          let refusedConnection = false;
          await send(url, { method: 'GET', path: '/' }).catch(() => (refusedConnection = true));
          expect(refusedConnection).to.equal(true);
        }, 900, 20);
        expect(answeredAt, 'the in-flight request was still running').to.equal(0);

        const res = await inFlight;
        expect(res.status).to.equal(200);
        expect(res.text).to.equal(`upstream saw ${OIN_HS}`);
        const result = await exited;
        expect(result.code, result.stderr).to.equal(0);
        expect(result.signal).to.equal(null);
        expect(exitedAt - answeredAt, 'ms from the answer to the exit').to.be.below(2_000);
        expect(received).to.have.length(1);
      });
    });
  });
});
