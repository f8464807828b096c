/**
 * The PostgreSQL store end to end: the `oingate` command line and running
 * gates against a real server, every change made with plain SQL and every
 * effect observed through HTTP (public calls, /readyz, /metrics).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type pg from 'pg';
import { LISTEN_APPLICATION_NAME } from '../../../src/store/postgres/source.ts';
import {
  call,
  eventually,
  OIN_A,
  OIN_B,
  send,
  signToken,
  tokenFor,
  twoTenants,
  type TenantSpec,
} from '../../support/gate.ts';
import {
  addTenant,
  connectStore,
  deleteCidr,
  deleteKey,
  insertCidr,
  insertKey,
  insertTenantRows,
  metricsText,
  metricValue,
  migrateStore,
  readyz,
  removeTenant,
  oingate,
  setTenantEnabled,
  startPgGate,
  storeVersion,
  type PgGate,
} from '../../support/pg-gate.ts';
import { startTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const PASSWORD = 's3cr3t-pw';
const RSA_1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const WITHIN_MS = 1000;

function withPassword(url: string): string {
  const u = new URL(url);
  u.password = PASSWORD;
  return u.toString();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A tenant of its own per test, allowed from loopback unless told otherwise. */
interface TestTenant {
  readonly oin: string;
  readonly kid: string;
  readonly secret: string;
  readonly spec: TenantSpec;
  token(kid?: string, secret?: string): string;
}

let sequence = 0;
function newTenant(cidrs: string[] = ['127.0.0.0/8']): TestTenant {
  const n = ++sequence;
  const oin = `000000020000${String(n).padStart(8, '0')}`;
  const kid = `k${n}`;
  const secret = `tenant-${n}-secret-0123456789abcdefghijklmnop`;
  return {
    oin,
    kid,
    secret,
    spec: { oin, name: `Tenant ${n}`, cidrs, keys: [{ kid, alg: 'HS256', secret }] },
    token: (k = kid, s = secret) => signToken({ oin }, s, { algorithm: 'HS256', keyid: k }),
  };
}

async function statusOf(gate: PgGate, tenant: TestTenant, token = tenant.token()): Promise<number> {
  return (await call(gate.url, { oin: tenant.oin }, token)).status;
}

/** Polls a real call until it gets `expected`; returns the milliseconds it took. */
function becomes(gate: PgGate, tenant: TestTenant, expected: number, token?: string, timeoutMs = 5_000): Promise<number> {
  return eventually(
    async () => {
      expect(await statusOf(gate, tenant, token)).to.equal(expected);
    },
    timeoutMs,
    5,
  );
}

/** Backend pids of the gates' LISTEN connections to one database. */
async function listenerPids(client: pg.Client, url: string): Promise<number[]> {
  const { rows } = await client.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 ORDER BY pid',
    [new URL(url).pathname.slice(1), LISTEN_APPLICATION_NAME],
  );
  return rows.map((r) => r.pid);
}

/** All rows of the three tables, for "nothing was written" checks. */
async function tableContents(client: pg.Client): Promise<unknown> {
  const tenants = await client.query('SELECT * FROM oingate.tenants ORDER BY oin');
  const cidrs = await client.query('SELECT oin, cidr::text FROM oingate.tenant_cidrs ORDER BY oin, cidr');
  const keys = await client.query('SELECT * FROM oingate.tenant_keys ORDER BY oin, kid');
  return { tenants: tenants.rows, cidrs: cidrs.rows, keys: keys.rows };
}

describe('PostgreSQL store through the service and the command line', function () {
  this.timeout(30_000);
  let db: TestDatabase;
  let dir: string;
  const gates: PgGate[] = [];
  const clients: pg.Client[] = [];

  async function gate(url: string, env: Record<string, string> = {}): Promise<PgGate> {
    const g = await startPgGate(url, env);
    gates.push(g);
    return g;
  }

  async function client(url: string): Promise<pg.Client> {
    const c = await connectStore(url);
    clients.push(c);
    return c;
  }

  async function migratedDatabase(): Promise<string> {
    const url = await db.createDatabase();
    await migrateStore(url);
    return url;
  }

  before(async function () {
    db = await startTestDatabase();
    dir = await mkdtemp(join(tmpdir(), 'oingate-pg-service-'));
  });

  after(async function () {
    await Promise.all(gates.splice(0).map((g) => g.close()));
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
    if (dir) await rm(dir, { recursive: true, force: true });
    await db?.destroy();
  });

  describe('command line', function () {
    let url: string;
    let sql: pg.Client;
    let g: PgGate;

    before(async function () {
      url = await db.createDatabase();
    });

    it('oingate migrate creates the schema, and a second run says it is up to date', async function () {
      const first = await oingate(['migrate'], url);
      expect(first.stderr).to.equal('');
      expect(first.code).to.equal(0);
      expect(first.stdout).to.match(/^applied 001_schema\b/);
      sql = await client(url);
      const { rows } = await sql.query<{ version: string }>('SELECT version FROM oingate.schema_migrations');
      expect(rows.map((r) => r.version)).to.include('001_schema');

      const second = await oingate(['migrate'], url);
      expect(second.code).to.equal(0);
      expect(second.stdout.trim()).to.equal('schema is up to date');
    });

    it('oingate import FILE loads a whitelist file, which a running gate then enforces', async function () {
      g = await gate(url);
      expect((await call(g.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(403);
      const file = join(dir, 'whitelist.json');
      await writeFile(file, JSON.stringify({ tenants: twoTenants() }));
      const result = await oingate(['import', file], url);
      expect(result.stderr).to.equal('');
      expect(result.code).to.equal(0);
      const imported = /^imported 2 tenant\(s\) from .*, version ([0-9a-f]{16})$/m.exec(result.stdout);
      expect(imported, result.stdout).to.not.equal(null);

      await eventually(async () => {
        expect((await call(g.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
      });
      expect((await call(g.url, { oin: OIN_B }, tokenFor(OIN_B))).status).to.equal(200);
      const ready = await readyz(g.adminUrl);
      expect(ready.body.version).to.equal(imported?.[1]);
      expect(ready.body.tenants).to.equal(2);
    });

    it('oingate import refuses an invalid file with exit 1 and every error, and writes nothing', async function () {
      const before = await tableContents(sql);
      const version = (await readyz(g.adminUrl)).body.version;
      const file = join(dir, 'invalid.json');
      const tenants = twoTenants();
      tenants[0] = { ...tenants[0]!, cidrs: ['0.0.0.0/0'] };
      tenants.push({ oin: '00000001000000000003', cidrs: ['127.0.0.0/8'], keys: [{ kid: 'c1', alg: 'HS256', secret: 'too-short!' }] });
      await writeFile(file, JSON.stringify({ tenants }));

      const result = await oingate(['import', file], url);
      expect(result.code).to.equal(1);
      expect(result.stdout).to.equal('');
      expect(result.stderr).to.contain('2 error(s)');
      expect(result.stderr).to.contain('0.0.0.0/0');
      expect(result.stderr).to.match(/secret is 10 bytes/);
      expect(await tableContents(sql)).to.deep.equal(before);
      // Still the imported whitelist, untouched.
      expect((await readyz(g.adminUrl)).body.version).to.equal(version);
      expect((await call(g.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    });

    it('oingate token --oin signs with the tenant key from the store; the gate accepts the token', async function () {
      const result = await oingate(['token', '--oin', OIN_B, '--ttl', '5m'], url);
      expect(result.stderr).to.equal('');
      expect(result.code).to.equal(0);
      const token = result.stdout.trim();
      expect(token.split('.')).to.have.length(3);
      expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).to.include({ kid: 'b1', alg: 'HS256' });
      expect((await call(g.url, { oin: OIN_B }, token)).status).to.equal(200);
      // The token is bound to its tenant: it does not open tenant A.
      expect((await call(g.url, { oin: OIN_A }, token)).status).to.equal(401);

      const unknown = await oingate(['token', '--oin', '00000009999999999999'], url);
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.contain('no tenant with OIN 00000009999999999999');
    });

    it('oingate check without FILE validates the PostgreSQL store and prints the version the gate serves', async function () {
      const result = await oingate(['check'], url);
      expect(result.stderr).to.equal('');
      expect(result.code).to.equal(0);
      const version = (await readyz(g.adminUrl)).body.version;
      expect(result.stdout.trim()).to.equal(
        `postgres store: ok, 2 tenant(s), 4 CIDR(s), 2 key(s), version ${version}`,
      );

      // A bad row in the store (one SQL cannot refuse): check says so, naming the row, exit 1.
      await insertKey(sql, OIN_A, { kid: 'not-pem', alg: 'ES256', publicKey: 'not a pem' });
      try {
        const bad = await oingate(['check'], url);
        expect(bad.code).to.equal(1);
        expect(bad.stderr).to.contain(`tenant ${OIN_A} key "not-pem"`);
        expect(bad.stderr).not.to.match(/tenants\[\d+\]/);
      } finally {
        await deleteKey(sql, OIN_A, 'not-pem');
      }
    });
  });

  describe('row changes, enforced through HTTP', function () {
    let url: string;
    let sql: pg.Client;
    let g: PgGate;

    before(async function () {
      url = await migratedDatabase();
      sql = await client(url);
      g = await gate(url);
    });

    it('an inserted tenant with its CIDR and key: its calls go from 403 to 200 within 1 s', async function () {
      const t = newTenant();
      expect(await statusOf(g, t)).to.equal(403);
      await addTenant(sql, t.spec);
      expect(await becomes(g, t, 200)).to.be.below(WITHIN_MS);
    });

    it('a deleted CIDR: the calls it allowed get 403 within 1 s', async function () {
      const t = newTenant(['127.0.0.0/8', '10.0.0.0/8']);
      await addTenant(sql, t.spec);
      await becomes(g, t, 200);
      await deleteCidr(sql, t.oin, '127.0.0.0/8');
      expect(await becomes(g, t, 403)).to.be.below(WITHIN_MS);
    });

    it('enabled set to false: the tenant gets 403 within 1 s, and 200 again when set back', async function () {
      const t = newTenant();
      await addTenant(sql, t.spec);
      await becomes(g, t, 200);
      await setTenantEnabled(sql, t.oin, false);
      expect(await becomes(g, t, 403)).to.be.below(WITHIN_MS);
      await setTenantEnabled(sql, t.oin, true);
      expect(await becomes(g, t, 200)).to.be.below(WITHIN_MS);
    });

    it('a rotated key: a token with the new kid is accepted within 1 s, and the old kid refused once its row is gone', async function () {
      const t = newTenant();
      await addTenant(sql, t.spec);
      await becomes(g, t, 200);
      const next = { kid: `${t.kid}-next`, secret: `${t.secret}-next` };
      const newToken = t.token(next.kid, next.secret);
      expect(await statusOf(g, t, newToken)).to.equal(401);

      const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
      await insertKey(sql, t.oin, { kid: next.kid, alg: 'HS256', secret: next.secret, expiresAt });
      expect(await becomes(g, t, 200, newToken)).to.be.below(WITHIN_MS);
      // Both keys work during the overlap.
      expect(await statusOf(g, t)).to.equal(200);

      await deleteKey(sql, t.oin, t.kid);
      expect(await becomes(g, t, 401, t.token())).to.be.below(WITHIN_MS);
      expect(await statusOf(g, t, newToken)).to.equal(200);
    });

    it('a deleted tenant: its calls get 403 within 1 s', async function () {
      const t = newTenant();
      await addTenant(sql, t.spec);
      await becomes(g, t, 200);
      await removeTenant(sql, t.oin);
      expect(await becomes(g, t, 403)).to.be.below(WITHIN_MS);
    });

    it('does not enforce an uncommitted transaction, even on an explicit reload; after COMMIT it is enforced whole', async function () {
      const t = newTenant();
      const version = (await readyz(g.adminUrl)).body.version;
      const tx = await connectStore(url);
      try {
        await tx.query('BEGIN');
        await insertTenantRows(tx, t.spec);
        // The one fixed hold: an uncommitted change must stay invisible.
        const until = Date.now() + 300;
        while (Date.now() < until) {
          expect(await statusOf(g, t)).to.equal(403);
          await sleep(20);
        }
        const reload = await send(g.adminUrl, { method: 'POST', path: '/reload' });
        expect(reload.status).to.equal(200);
        expect(reload.json()['version']).to.equal(version);
        expect(await statusOf(g, t)).to.equal(403);

        await tx.query('COMMIT');
        const seen: number[] = [];
        const ms = await eventually(
          async () => {
            const status = await statusOf(g, t);
            seen.push(status);
            expect(status).to.equal(200);
          },
          5_000,
          5,
        );
        expect(ms).to.be.below(WITHIN_MS);
        // Tenant, CIDR and key arrive together: never the tenant without its key (401).
        expect(seen.filter((s) => s !== 403 && s !== 200)).to.deep.equal([]);
      } finally {
        await tx.query('ROLLBACK').catch(() => undefined);
        await tx.end().catch(() => undefined);
      }
    });

    // Rows the database's own checks (sql/003) cannot refuse when written:
    // what only oingate can check, refused at load and named by OIN and kid.
    const badRows: Array<{ title: string; insert(c: pg.Client, t: TestTenant): Promise<void>; fix(c: pg.Client, t: TestTenant): Promise<void>; error: RegExp }> = [
      {
        title: 'a public key that is not a PEM',
        insert: (c, t) => insertKey(c, t.oin, { kid: 'bad', alg: 'RS256', publicKey: 'not a pem' }),
        fix: (c, t) => deleteKey(c, t.oin, 'bad'),
        error: /^invalid whitelist: tenant \d{20} key "bad"/,
      },
      {
        title: 'an RSA key of 1024 bits',
        insert: (c, t) => insertKey(c, t.oin, { kid: 'bad', alg: 'RS256', publicKey: RSA_1024 }),
        fix: (c, t) => deleteKey(c, t.oin, 'bad'),
        error: /^invalid whitelist: tenant \d{20} key "bad".*1024/,
      },
      {
        title: 'a kid of 300 characters',
        insert: (c, t) => insertKey(c, t.oin, { kid: 'b'.repeat(300), alg: 'HS256', secret: 'y'.repeat(40) }),
        fix: (c, t) => deleteKey(c, t.oin, 'b'.repeat(300)),
        error: /^invalid whitelist: tenant \d{20} key "b{64}…" kid: /,
      },
    ];

    for (const bad of badRows) {
      it(`refuses ${bad.title}: the old whitelist stays, /readyz shows lastError, refused reloads count; fixing the row clears it`, async function () {
        const t = newTenant();
        await addTenant(sql, t.spec);
        await becomes(g, t, 200);
        const good = await readyz(g.adminUrl);
        expect(good.body.lastError).to.equal(null);
        const refusedBefore = await metricValue(g.adminUrl, 'oingate_reloads_refused_total');

        await bad.insert(sql, t);
        const ms = await eventually(async () => {
          expect((await readyz(g.adminUrl)).body.lastError).to.match(bad.error);
        }, 5_000, 5);
        expect(ms).to.be.below(WITHIN_MS);
        const refused = await readyz(g.adminUrl);
        expect(refused.status).to.equal(200);
        expect(refused.body.ready).to.equal(true);
        expect(refused.body.version).to.equal(good.body.version);
        expect(await metricValue(g.adminUrl, 'oingate_reloads_refused_total')).to.be.above(refusedBefore);
        expect(await statusOf(g, t)).to.equal(200);
        expect(g.logs.lines.some((l) => l['msg'] === 'whitelist not loaded; the last good whitelist stays in force' && bad.error.test(String(l['error'])))).to.equal(true);

        await bad.fix(sql, t);
        await eventually(async () => {
          expect((await readyz(g.adminUrl)).body.lastError).to.equal(null);
        });
        expect(await statusOf(g, t)).to.equal(200);
        expect((await readyz(g.adminUrl)).body.version).to.equal(await storeVersion(url));
      });
    }

    it('settles a storm of 500 updates on the final state, in far fewer reloads than updates', async function () {
      const t = newTenant(['10.0.0.0/8']);
      await addTenant(sql, t.spec);
      const start = await storeVersion(url);
      await eventually(async () => {
        expect((await readyz(g.adminUrl)).body.version).to.equal(start);
      });
      const reloadsBefore = await metricValue(g.adminUrl, 'oingate_reloads_total');

      for (let i = 0; i < 500; i++) {
        await sql.query('UPDATE oingate.tenants SET name = $2 WHERE oin = $1', [t.oin, `storm ${i}`]);
      }
      await sql.query(`UPDATE oingate.tenant_cidrs SET cidr = '127.0.0.0/8' WHERE oin = $1`, [t.oin]);
      const final = await storeVersion(url);

      await eventually(async () => {
        expect((await readyz(g.adminUrl)).body.version).to.equal(final);
      });
      expect(await statusOf(g, t)).to.equal(200);
      const reloads = (await metricValue(g.adminUrl, 'oingate_reloads_total')) - reloadsBefore;
      expect(reloads).to.be.at.least(1);
      expect(reloads).to.be.below(250);
    });

    it('recovers when its LISTEN backend is terminated: a change made meanwhile is enforced after the reconnect', async function () {
      const [pid, ...others] = await listenerPids(sql, url);
      expect(pid, 'a listening backend').to.be.a('number');
      expect(others).to.deep.equal([]);
      const t = newTenant();

      const terminated = await sql.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
      expect(terminated.rows[0]?.ok).to.equal(true);
      // Commit as soon as the old backend is gone, before the listener is back
      // (its first retry waits 100 ms); the reload after reconnecting must see it.
      await eventually(async () => {
        expect(await listenerPids(sql, url)).to.not.include(pid);
      }, 5_000, 2);
      await addTenant(sql, t.spec);

      await becomes(g, t, 200, undefined, 5_000);
      await eventually(async () => {
        expect(await listenerPids(sql, url)).to.have.length(1);
      });
      expect(g.logs.lines.some((l) => l['msg'] === 'PostgreSQL listener connection lost; reconnecting')).to.equal(true);
      expect(g.logs.lines.some((l) => l['msg'] === 'PostgreSQL listener reconnected')).to.equal(true);

      // And notifications flow again on the new connection.
      await setTenantEnabled(sql, t.oin, false);
      expect(await becomes(g, t, 403)).to.be.below(WITHIN_MS);
    });
  });

  it('three instances on one database all enforce one commit within 1 s', async function () {
    const url = await migratedDatabase();
    const sql = await client(url);
    const three = await Promise.all([gate(url), gate(url), gate(url)]);
    await eventually(async () => {
      expect(await listenerPids(sql, url)).to.have.length(3);
    });
    const t = newTenant();
    for (const g of three) expect(await statusOf(g, t)).to.equal(403);

    await addTenant(sql, t.spec);
    const enabled = await Promise.all(three.map((g) => becomes(g, t, 200)));
    expect(Math.max(...enabled)).to.be.below(WITHIN_MS);

    await setTenantEnabled(sql, t.oin, false);
    const disabled = await Promise.all(three.map((g) => becomes(g, t, 403)));
    expect(Math.max(...disabled)).to.be.below(WITHIN_MS);

    const versions = await Promise.all(three.map(async (g) => (await readyz(g.adminUrl)).body.version));
    expect(new Set(versions).size).to.equal(1);
  });

  describe('server outage (a cluster of its own)', function () {
    let cluster: TestDatabase;
    let url: string;
    let secretUrl: string;
    let g: PgGate;
    const t = newTenant();
    /** Every /readyz and CLI text seen, searched for the password at the end. */
    const seen: string[] = [];

    before(async function () {
      cluster = await startTestDatabase({ private: true });
      url = await cluster.createDatabase();
      await migrateStore(url);
      const sql = await connectStore(url);
      try {
        await addTenant(sql, t.spec);
      } finally {
        await sql.end();
      }
      // Trust authentication ignores the password; it is there to be hidden.
      secretUrl = withPassword(url);
    });

    after(async function () {
      await g?.close();
      await cluster?.destroy();
    });

    async function observedReadyz(): Promise<Awaited<ReturnType<typeof readyz>>> {
      const r = await readyz(g.adminUrl);
      seen.push(r.text);
      return r;
    }

    it('starting with the server down: /healthz 200, /readyz 503, calls 503 unavailable; ready without a restart once the server is up', async function () {
      await cluster.stop();
      g = await startPgGate(secretUrl);
      expect((await send(g.adminUrl, { method: 'GET', path: '/healthz' })).status).to.equal(200);
      const notReady = await observedReadyz();
      expect(notReady.status).to.equal(503);
      expect(notReady.body.ready).to.equal(false);
      expect(notReady.body.lastError).to.be.a('string');
      const refused = await call(g.url, { oin: t.oin }, t.token());
      expect(refused.status).to.equal(503);
      expect(refused.json()['error']).to.equal('unavailable');
      expect(
        g.logs.lines.some((l) => l['msg'] === 'whitelist not loaded; no whitelist is loaded yet, so requests get 503'),
        'the log does not claim a last good whitelist that does not exist',
      ).to.equal(true);

      await cluster.start();
      await eventually(async () => {
        expect((await observedReadyz()).status).to.equal(200);
      }, 10_000);
      expect(await statusOf(g, t)).to.equal(200);
      expect((await observedReadyz()).body.lastError).to.equal(null);
    });

    it('while the server is down it keeps serving the last good whitelist; after a restart changes are enforced again', async function () {
      await becomes(g, t, 200);
      const version = (await observedReadyz()).body.version;
      await cluster.stop();

      expect(await statusOf(g, t)).to.equal(200);
      const reload = await send(g.adminUrl, { method: 'POST', path: '/reload' });
      seen.push(reload.text);
      expect(reload.status).to.equal(422);
      const during = await observedReadyz();
      expect(during.status).to.equal(200);
      expect(during.body).to.include({ ready: true, version });
      expect(during.body.lastError).to.match(/cannot connect to PostgreSQL store/);
      expect(await statusOf(g, t)).to.equal(200);

      await cluster.start();
      const sql = await connectStore(url);
      try {
        await setTenantEnabled(sql, t.oin, false);
      } finally {
        await sql.end();
      }
      await becomes(g, t, 403, undefined, 10_000);
      await eventually(async () => {
        expect((await observedReadyz()).body.lastError).to.equal(null);
      });
    });

    it('never shows the connection password in logs, /readyz, /metrics or command-line errors', async function () {
      // Command-line errors with the server down, and a malformed URL.
      await cluster.stop();
      const results = await Promise.all([
        oingate(['check'], secretUrl),
        oingate(['migrate'], secretUrl),
        oingate(['token', '--oin', t.oin], secretUrl),
        oingate(['check'], `postgres://postgres:${PASSWORD}@[bad-host/db`),
      ]);
      await cluster.start();
      for (const r of results) {
        expect(r.code).to.not.equal(0);
        expect(r.stderr).to.match(/^oingate: /);
        seen.push(r.stdout, r.stderr);
      }
      expect(results[0]!.stderr).to.contain('postgres://postgres@127.0.0.1:');

      const metrics = await metricsText(g.adminUrl);
      const logs = JSON.stringify(g.logs.lines);
      // The texts searched did go through the failure paths that quote the store.
      expect(logs).to.contain('PostgreSQL listener cannot connect');
      expect(logs).to.contain('postgres://postgres@127.0.0.1:');
      expect(seen.join('\n')).to.contain('cannot connect to PostgreSQL store postgres://postgres@');
      expect(metrics).to.contain('oingate_reloads_refused_total');

      for (const text of [logs, metrics, ...seen]) expect(text).to.not.contain(PASSWORD);
    });
  });
});
