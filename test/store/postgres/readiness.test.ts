/**
 * What a running gate on a PostgreSQL store says about the store: /readyz
 * (store, lastError, lastErrorAt, storeConnected) and the store metrics, and
 * that no form of the connection password shows anywhere.
 */
import { expect } from 'chai';
import type pg from 'pg';
import { LISTEN_APPLICATION_NAME } from '../../../src/store/postgres/source.ts';
import { eventually, SECRET_A, type TenantSpec } from '../../support/gate.ts';
import {
  addTenant,
  connectStore,
  deleteKey,
  insertKey,
  metricsText,
  metricValue,
  migrateStore,
  oingate,
  readyz,
  startPgGate,
  type PgGate,
} from '../../support/pg-gate.ts';
import { startTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const TENANT: TenantSpec = { oin: '00000005000000000001', cidrs: ['127.0.0.0/8'], keys: [{ kid: 'a1', alg: 'HS256', secret: SECRET_A }] };

/** Secrets in every form a postgres:// URL can carry one; trust authentication ignores them all. */
const SECRETS = ['userinfo-Secret-1', 'encoded-name-Secret-2', 'ssl-Secret-3', 'plain-param-Secret-4'];
function secretUrl(url: string): string {
  const u = new URL(url);
  u.password = SECRETS[0]!;
  return `${u.toString()}?pass%77ord=${SECRETS[1]}&sslpassword=${SECRETS[2]}&application_name=x`;
}
function plainParamUrl(url: string): string {
  return `${url}?password=${SECRETS[3]}`;
}

async function terminateListeners(sql: pg.Client, url: string): Promise<number> {
  const { rowCount } = await sql.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
    [new URL(url).pathname.slice(1), LISTEN_APPLICATION_NAME],
  );
  return rowCount ?? 0;
}

describe('PostgreSQL store: readiness, metrics and the password', function () {
  let db: TestDatabase;
  let url: string;
  let sql: pg.Client;
  const gates: PgGate[] = [];

  before(async function () {
    db = await startTestDatabase();
    url = await db.createDatabase();
    await migrateStore(url);
    sql = await connectStore(url);
    await addTenant(sql, TENANT);
  });

  after(async function () {
    for (const g of gates) await g.close();
    await sql?.end();
    await db?.destroy();
  });

  async function gate(storeUrl: string, env: Record<string, string> = {}): Promise<PgGate> {
    const g = await startPgGate(storeUrl, env);
    gates.push(g);
    return g;
  }

  it('names the store as postgres://user@host:port/db in /readyz, with no password and no query parameter', async function () {
    const g = await gate(secretUrl(url));
    const { body, text } = await readyz(g.adminUrl);
    const u = new URL(url);
    expect(body.store).to.equal(`postgres://postgres@${u.host}${u.pathname}`);
    for (const secret of SECRETS) expect(text).not.to.include(secret);
    expect(text).not.to.include('application_name');
  });

  it('shows storeConnected true once listening and false as soon as the listener is lost, with store metrics to match', async function () {
    const g = await gate(url, { OINGATE_PG_RESYNC_SECONDS: '3600' });
    await eventually(async () => {
      expect((await readyz(g.adminUrl)).body).to.include({ storeConnected: true, lastError: null, lastErrorAt: null });
    });
    expect(await metricValue(g.adminUrl, 'oingate_store_connected')).to.equal(1);
    const lastLoad = await metricValue(g.adminUrl, 'oingate_last_load_success_timestamp_seconds');
    expect(lastLoad).to.be.within(Date.now() / 1000 - 60, Date.now() / 1000 + 1);

    // A role of its own, which the test then forbids to log in: reconnects fail until it may again.
    const role = `oingate_nologin_${process.pid}`;
    await sql.query(`CREATE ROLE ${role} LOGIN`);
    await sql.query(`GRANT USAGE ON SCHEMA oingate TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA oingate TO ${role}`);
    const g2 = await gate(url.replace('postgres@', `${role}@`), { OINGATE_PG_RESYNC_SECONDS: '3600' });
    await eventually(async () => {
      expect((await readyz(g2.adminUrl)).body).to.include({ ready: true, storeConnected: true, lastError: null });
    });
    try {
      await sql.query(`ALTER ROLE ${role} NOLOGIN`);
      const lostAt = Date.now();
      await terminateListeners(sql, url);
      // Within moments, not at the next resync (off here): disconnected, and why.
      const ms = await eventually(async () => {
        const { body } = await readyz(g2.adminUrl);
        expect(body.storeConnected).to.equal(false);
        expect(body.lastError).to.match(new RegExp(`cannot connect to PostgreSQL store postgres://${role}@.*not permitted to log in`));
      }, 5_000, 10);
      expect(ms).to.be.below(3_000);
      const { body } = await readyz(g2.adminUrl);
      expect(Date.parse(body.lastErrorAt as string)).to.be.within(lostAt - 1000, Date.now());
      expect(await metricValue(g2.adminUrl, 'oingate_store_connected')).to.equal(0);
    } finally {
      await sql.query(`ALTER ROLE ${role} LOGIN`);
    }
    // It reconnects on its own and says so; the reload after it clears lastError.
    await eventually(async () => {
      expect((await readyz(g2.adminUrl)).body).to.include({ storeConnected: true, lastError: null, lastErrorAt: null });
    }, 10_000);
    expect(await metricValue(g2.adminUrl, 'oingate_store_connected')).to.equal(1);
    await g2.close();
    await sql.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
  });

  it('counts a bad row as cause="invalid" and an unreachable database as cause="unreachable"', async function () {
    const g = await gate(url);
    const count = async (cause: string) => {
      const text = await metricsText(g.adminUrl);
      const match = new RegExp(`^oingate_reloads_refused_total\\{cause="${cause}"\\} (\\d+)$`, 'm').exec(text);
      expect(match, cause).to.not.equal(null);
      return Number(match![1]);
    };
    const invalidBefore = await count('invalid');
    await insertKey(sql, TENANT.oin, { kid: 'bad', alg: 'ES256', publicKey: 'not a pem' });
    try {
      await eventually(async () => {
        // At least one: a resync or a second notification may refuse the same rows again.
        expect(await count('invalid')).to.be.greaterThan(invalidBefore);
      });
      expect(await count('unreachable')).to.equal(0);
    } finally {
      await deleteKey(sql, TENANT.oin, 'bad');
    }

    const missing = await gate(url.replace(/\/[^/]+$/, '/no_such_database'));
    const text = await metricsText(missing.adminUrl);
    expect(text).to.match(/^oingate_reloads_refused_total\{cause="unreachable"\} [1-9]/m);
    expect(text).to.match(/^oingate_reloads_refused_total\{cause="invalid"\} 0$/m);
    expect((await readyz(missing.adminUrl)).body).to.include({ ready: false, storeConnected: false });
  });

  it('keeps every password form out of /readyz, the log and /metrics, through bad rows and failed connections', async function () {
    const seen: string[] = [];
    const good = await gate(secretUrl(url));
    const plain = await gate(plainParamUrl(url));
    const missing = await gate(secretUrl(url).replace(/\/[^/?]+\?/, '/no_such_database?'));
    await insertKey(sql, TENANT.oin, { kid: 'bad', alg: 'ES256', publicKey: 'not a pem' });
    try {
      await eventually(async () => {
        const { body } = await readyz(good.adminUrl);
        expect(body.lastError).to.include(`tenant ${TENANT.oin} key "bad"`);
      });
      await terminateListeners(sql, url);
      await eventually(async () => {
        expect((await readyz(good.adminUrl)).body.storeConnected).to.equal(true);
      });
    } finally {
      await deleteKey(sql, TENANT.oin, 'bad');
    }
    for (const g of [good, plain, missing]) {
      seen.push((await readyz(g.adminUrl)).text, await metricsText(g.adminUrl), JSON.stringify(g.logs.lines));
    }
    const logs = JSON.stringify(missing.logs.lines);
    // The texts searched did go through the paths that quote the store and its errors.
    expect(logs).to.include('PostgreSQL listener cannot connect');
    expect(logs).to.include('no_such_database');
    expect(JSON.stringify(good.logs.lines)).to.include('whitelist not loaded');
    for (const text of seen) for (const secret of SECRETS) expect(text).not.to.include(secret);
  });

  it('keeps every password form out of `oingate migrate`, `import` and `check` errors', async function () {
    const down = 'postgres://postgres:' + SECRETS[0] + '@127.0.0.1:1/gate?pass%77ord=' + SECRETS[1] + '&sslpassword=' + SECRETS[2];
    const downPlain = 'postgres://u@127.0.0.1:1/gate?password=' + SECRETS[3];
    const missing = secretUrl(url).replace(/\/[^/?]+\?/, '/no_such_database?');
    const results = await Promise.all([
      oingate(['migrate'], down),
      oingate(['import', 'config/whitelist.json'], down),
      oingate(['check'], down),
      oingate(['migrate'], downPlain),
      oingate(['migrate'], missing),
      oingate(['check'], `postgres://u:${SECRETS[0]}@[bad/db?password=${SECRETS[3]}`),
    ]);
    for (const r of results) {
      expect(r.code, r.stderr).to.not.equal(0);
      expect(r.stderr).to.match(/^oingate: /);
      for (const secret of SECRETS) expect(r.stdout + r.stderr).not.to.include(secret);
    }
    expect(results[0]!.stderr).to.include('postgres://postgres@127.0.0.1:1/gate');
    expect(results[4]!.stderr).to.include('no_such_database');
  });
});
