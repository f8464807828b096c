/**
 * Incremental reloads from PostgreSQL (sql/006): a notification names the
 * tenants a transaction touched, and each instance re-reads only those;
 * everything else (reconnect, TRUNCATE, a payload not ours, an overflow)
 * reads the whole store. Real server, real LISTEN/NOTIFY, three instances.
 */
import { expect } from 'chai';
import pg from 'pg';
import { parseAddress } from '../../../src/ip/address.ts';
import { applyChanges, buildSnapshot, type Snapshot } from '../../../src/model/snapshot.ts';
import { SnapshotHolder } from '../../../src/store/holder.ts';
import { migrate } from '../../../src/store/postgres/migrate.ts';
import { LISTEN_APPLICATION_NAME, PostgresSource } from '../../../src/store/postgres/source.ts';
import { seededRandom } from '../../bench/lib/fixtures.ts';
import { SQL_DIR } from '../../support/pg-gate.ts';
import { startTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const options = { oinPattern: /^[0-9]{20}$/u };
const SECRET = 'incremental-test-secret-0123456789abcdef';
const oin = (i: number): string => `0000000600${String(i).padStart(10, '0')}`;

/**
 * A PostgresSource that counts its reads. Every full reload starts with the
 * revision (a full read follows only when it moved), so that counts them.
 */
class CountingSource extends PostgresSource {
  fullReads = 0;
  partialReads = 0;
  override async revision(): Promise<string | undefined> {
    this.fullReads++;
    return super.revision();
  }
  // A first load reads everything without asking for the revision first.
  override async loadWithRevision(): ReturnType<PostgresSource['loadWithRevision']> {
    this.fullReads++;
    return super.loadWithRevision();
  }
  override async loadTenants(oins: readonly string[]): ReturnType<PostgresSource['loadTenants']> {
    this.partialReads++;
    return super.loadTenants(oins);
  }
}

interface Instance {
  readonly source: CountingSource;
  readonly holder: SnapshotHolder;
  /** Every snapshot this instance enforced, in order. */
  readonly seen: Snapshot[];
}

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('incremental reloads from PostgreSQL', function () {
  this.timeout(30_000);
  let db: TestDatabase;
  let url: string;
  let sql: pg.Client;
  let instances: Instance[] = [];

  async function start(): Promise<Instance> {
    const source = new CountingSource({ connectionString: url, resyncSeconds: 0, maxBackoffMs: 200 });
    const seen: Snapshot[] = [];
    const holder = new SnapshotHolder(
      source,
      (document, previous) => buildSnapshot(document, { ...options, ...(previous ? { previous } : {}) }),
      { loaded: (snapshot) => seen.push(snapshot) },
      (current, changes) => applyChanges(current, changes, options),
    );
    const outcome = await holder.start();
    expect(outcome.ok, JSON.stringify(outcome)).to.equal(true);
    // The connect itself asks for one full read: wait until it is done.
    await eventually('the first full reads', () => source.fullReads >= 2);
    await eventually('settled', async () => (await fullVersion()) === holder.current?.version);
    const instance = { source, holder, seen };
    instances.push(instance);
    return instance;
  }

  /** The version a full read of the store gives now. */
  async function fullVersion(): Promise<string> {
    const source = new PostgresSource({ connectionString: url, resyncSeconds: 0 });
    try {
      return (await buildSnapshot(await source.load(), options)).version;
    } finally {
      await source.close();
    }
  }

  async function settled(instance: Instance): Promise<void> {
    const expected = await fullVersion();
    await eventually(`instance at version ${expected}`, () => instance.holder.current?.version === expected);
  }

  /** A change no trigger signals: replica mode fires no triggers. */
  async function renameSilently(tenant: string, name: string): Promise<void> {
    await sql.query(`SET session_replication_role = replica`);
    await sql.query(`UPDATE oingate.tenants SET name = $2 WHERE oin = $1`, [tenant, name]);
    await sql.query(`SET session_replication_role = DEFAULT`);
  }

  async function addTenant(i: number, cidr = `10.${i >> 8}.${i & 255}.0/24`): Promise<void> {
    await sql.query('INSERT INTO oingate.tenants (oin, name) VALUES ($1, $2)', [oin(i), `tenant ${i}`]);
    await sql.query('INSERT INTO oingate.tenant_cidrs VALUES ($1, $2)', [oin(i), cidr]);
    await sql.query(`INSERT INTO oingate.tenant_keys (oin, kid, alg, secret) VALUES ($1, 'k1', 'HS256', $2)`, [oin(i), SECRET]);
  }

  before(async function () {
    db = await startTestDatabase();
  });

  after(async function () {
    await db?.destroy();
  });

  beforeEach(async function () {
    url = await db.createDatabase();
    await migrate(url, SQL_DIR);
    sql = new pg.Client({ connectionString: url });
    await sql.connect();
    for (let i = 0; i < 20; i++) await addTenant(i);
  });

  afterEach(async function () {
    for (const instance of instances) await instance.holder.close();
    instances = [];
    await sql.end();
  });

  it('shows every instance a transaction changing three tenants whole or not at all, without a full read', async function () {
    const all = [await start(), await start(), await start()];
    const fullBefore = all.map((x) => x.source.fullReads);
    await sql.query('BEGIN');
    await sql.query(`UPDATE oingate.tenants SET name = 'changed' WHERE oin = $1`, [oin(1)]);
    await sql.query(`INSERT INTO oingate.tenant_cidrs VALUES ($1, '192.0.2.0/24')`, [oin(2)]);
    await sql.query(`DELETE FROM oingate.tenant_keys WHERE oin = $1`, [oin(3)]);
    await sql.query('COMMIT');
    for (const x of all) await settled(x);
    for (const x of all) {
      for (const snapshot of x.seen) {
        const changes = [
          snapshot.tenants.get(oin(1))?.name === 'changed',
          snapshot.tenants.get(oin(2))?.cidrTexts.includes('192.0.2.0/24') === true,
          snapshot.tenants.get(oin(3))?.keys.list.length === 0,
        ];
        expect(new Set(changes).size, `a snapshot with part of the transaction: ${changes}`).to.equal(1);
      }
      expect(x.seen.at(-1)!.covers(parseAddress('192.0.2.9')!)).to.equal(true);
    }
    expect(all.map((x) => x.source.fullReads)).to.deep.equal(fullBefore);
    expect(all.every((x) => x.source.partialReads >= 1)).to.equal(true);
  });

  it("applies a revocation as one re-read of its tenant on every instance, keeping that tenant's keys and every other tenant", async function () {
    const all = [await start(), await start(), await start()];
    const before = all.map((x) => x.holder.current!);
    const fullBefore = all.map((x) => x.source.fullReads);
    await sql.query(`INSERT INTO oingate.revoked_tokens (oin, jti, reason) VALUES ($1, 'leaked', 'test')`, [oin(3)]);
    for (const x of all) await settled(x);
    all.forEach((x, i) => {
      const now = x.holder.current!;
      expect(now.tenants.get(oin(3))!.revokedTokens?.has('leaked')).to.equal(true);
      expect(now.tenants.get(oin(3))!.keys).to.equal(before[i]!.tenants.get(oin(3))!.keys);
      expect(now.tenants.get(oin(4))).to.equal(before[i]!.tenants.get(oin(4)));
      expect(now.revokedTokens).to.equal(1);
    });
    expect(all.map((x) => x.source.fullReads)).to.deep.equal(fullBefore);
    // tokens_issued_after rides the same way, and a deleted revocation is gone again.
    await sql.query(`UPDATE oingate.tenants SET tokens_issued_after = now() WHERE oin = $1`, [oin(5)]);
    await sql.query(`DELETE FROM oingate.revoked_tokens WHERE oin = $1`, [oin(3)]);
    for (const x of all) await settled(x);
    for (const x of all) {
      expect(x.holder.current!.tenants.get(oin(5))!.tokensIssuedAfter).to.be.a('number');
      expect(x.holder.current!.tenants.get(oin(3))!.revokedTokens).to.equal(undefined);
    }
    expect(all.map((x) => x.source.fullReads)).to.deep.equal(fullBefore);
  });

  it('keeps a revocation of a deleted tenant without effect, and enforces it when the tenant comes back', async function () {
    const x = await start();
    await sql.query(`INSERT INTO oingate.revoked_tokens (oin, jti) VALUES ($1, 'kept')`, [oin(6)]);
    await settled(x);
    await sql.query('DELETE FROM oingate.tenants WHERE oin = $1', [oin(6)]);
    await settled(x);
    expect(x.holder.current!.tenants.has(oin(6))).to.equal(false);
    expect(x.holder.lastError).to.equal(null);
    expect((await sql.query('SELECT count(*)::int AS n FROM oingate.revoked_tokens')).rows[0]).to.deep.equal({ n: 1 });
    // A full read (a start, a reconnect, a resync) drops the orphan row too, instead of refusing the store.
    const full = await x.holder.reload();
    expect(full.ok, full.ok ? '' : full.error).to.equal(true);
    expect(x.holder.lastError).to.equal(null);
    expect(x.holder.current!.tenants.has(oin(6))).to.equal(false);
    await addTenant(6);
    await settled(x);
    expect(x.holder.current!.tenants.get(oin(6))!.revokedTokens?.has('kept')).to.equal(true);
  });

  it('refuses a change whose revocation row fails validation, keeping the last good state, until the row is fixed', async function () {
    const x = await start();
    await sql.query(`INSERT INTO oingate.revoked_tokens (oin, jti) VALUES ($1, 'good')`, [oin(7)]);
    await settled(x);
    const good = x.holder.current!;
    // Past the bound oingate checks; the table's own check is dropped to write it.
    await sql.query('ALTER TABLE oingate.revoked_tokens DROP CONSTRAINT revoked_tokens_jti_length');
    await sql.query(`INSERT INTO oingate.revoked_tokens (oin, jti) VALUES ($1, repeat('x', 2000))`, [oin(7)]);
    await eventually('the bad row refused', () => x.holder.lastError !== null);
    expect(x.holder.lastError).to.include(`revoked token "${'x'.repeat(64)}…" of tenant ${oin(7)} jti`);
    expect(x.holder.current).to.equal(good);
    expect(x.holder.current!.tenants.get(oin(7))!.revokedTokens?.has('good')).to.equal(true);
    await sql.query(`DELETE FROM oingate.revoked_tokens WHERE char_length(jti) > 1024`);
    await eventually('the error cleared', () => x.holder.lastError === null);
    expect(x.holder.current!.tenants.get(oin(7))!.revokedTokens?.has('good')).to.equal(true);
  });

  it('applies a multi-row statement over many tenants, sharing every tenant it did not touch', async function () {
    const x = await start();
    const before = x.holder.current!;
    const fullBefore = x.source.fullReads;
    await sql.query(`UPDATE oingate.tenants SET enabled = false WHERE oin = ANY($1)`, [[oin(4), oin(5), oin(6), oin(7), oin(8)]]);
    await settled(x);
    const now = x.holder.current!;
    for (const i of [4, 5, 6, 7, 8]) expect(now.tenants.get(oin(i))?.enabled).to.equal(false);
    for (const i of [0, 1, 2, 9, 19]) expect(now.tenants.get(oin(i))).to.equal(before.tenants.get(oin(i)));
    expect(x.source.fullReads).to.equal(fullBefore);
  });

  it('follows a cascade delete: the tenant and its rows are gone', async function () {
    const x = await start();
    const fullBefore = x.source.fullReads;
    await sql.query('DELETE FROM oingate.tenants WHERE oin = $1', [oin(9)]);
    await settled(x);
    expect(x.holder.current!.tenants.has(oin(9))).to.equal(false);
    expect(x.holder.current!.tenants.size).to.equal(19);
    expect(x.source.fullReads).to.equal(fullBefore);
  });

  it('follows an OIN renamed in place: the old one is gone, the new one enforced', async function () {
    const x = await start();
    await sql.query(`INSERT INTO oingate.tenants (oin, name) VALUES ($1, 'bare')`, [oin(100)]);
    await settled(x);
    await sql.query('UPDATE oingate.tenants SET oin = $1 WHERE oin = $2', [oin(101), oin(100)]);
    await settled(x);
    expect(x.holder.current!.tenants.has(oin(100))).to.equal(false);
    expect(x.holder.current!.tenants.get(oin(101))?.name).to.equal('bare');
  });

  it('reads everything on a hand-sent NOTIFY that is not ours, and is still correct', async function () {
    const x = await start();
    await renameSilently(oin(0), 'silent');
    const fullBefore = x.source.fullReads;
    await sql.query(`NOTIFY oingate_config, 'garbage'`);
    await eventually('a full read', () => x.source.fullReads > fullBefore);
    await settled(x);
    expect(x.holder.current!.tenants.get(oin(0))?.name).to.equal('silent');
    for (const payload of ['oingate:1:', 'oingate:1:[]', 'oingate:1:[1]', 'oingate:1:{"a":1}', 'oingate:2:["x"]']) {
      const reads = x.source.fullReads;
      await sql.query(`SELECT pg_notify('oingate_config', $1)`, [payload]);
      await eventually(`a full read for ${payload}`, () => x.source.fullReads > reads);
    }
  });

  it('reads everything after a statement touching too many tenants for one payload', async function () {
    const x = await start();
    const fullBefore = x.source.fullReads;
    await sql.query(`INSERT INTO oingate.tenants (oin) SELECT '0000000700' || lpad(g::text, 10, '0') FROM generate_series(1, 400) g`);
    await eventually('a full read', () => x.source.fullReads > fullBefore);
    await settled(x);
    expect(x.holder.current!.tenants.size).to.equal(420);
  });

  it('reads everything after TRUNCATE', async function () {
    const x = await start();
    const fullBefore = x.source.fullReads;
    await sql.query('TRUNCATE oingate.tenant_keys');
    await eventually('a full read', () => x.source.fullReads > fullBefore);
    await settled(x);
    expect([...x.holder.current!.tenants.values()].every((t) => t.keys.list.length === 0)).to.equal(true);
  });

  it('refuses a change with a bad row as a whole, keeps the others enforced, and recovers when it is fixed', async function () {
    const x = await start();
    const before = x.holder.current!;
    await sql.query('BEGIN');
    await sql.query(`UPDATE oingate.tenants SET name = 'half' WHERE oin = $1`, [oin(10)]);
    await sql.query(`UPDATE oingate.tenants SET jwks_uri = 'http://idp.example/jwks' WHERE oin = $1`, [oin(11)]);
    await sql.query('COMMIT');
    await eventually('the change refused', () => x.holder.lastError !== null);
    expect(x.holder.lastError).to.include(`tenant ${oin(11)}`);
    expect(x.holder.current).to.equal(before);
    // A later good change elsewhere cannot clear the error while the bad row stays.
    const refusedAt = x.holder.readiness().lastErrorAt;
    await new Promise((r) => setTimeout(r, 5)); // lastErrorAt has millisecond resolution
    await sql.query(`UPDATE oingate.tenants SET name = 'later' WHERE oin = $1`, [oin(12)]);
    await eventually('the later change refused too', () => x.holder.readiness().lastErrorAt !== refusedAt);
    expect(x.holder.lastError).to.include(`tenant ${oin(11)}`);
    expect(x.holder.current!.tenants.get(oin(12))?.name).to.equal('tenant 12');
    await sql.query(`UPDATE oingate.tenants SET jwks_uri = NULL WHERE oin = $1`, [oin(11)]);
    await settled(x);
    expect(x.holder.lastError).to.equal(null);
    expect(x.holder.current!.tenants.get(oin(10))?.name).to.equal('half');
    expect(x.holder.current!.tenants.get(oin(12))?.name).to.equal('later');
  });

  it('reads everything after a reconnect, catching changes made while it was away', async function () {
    const x = await start();
    await renameSilently(oin(5), 'while away');
    const fullBefore = x.source.fullReads;
    await sql.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, [
      LISTEN_APPLICATION_NAME,
    ]);
    await eventually('a full read after the reconnect', () => x.source.fullReads > fullBefore);
    await settled(x);
    expect(x.holder.current!.tenants.get(oin(5))?.name).to.equal('while away');
  });

  it('keeps the version of a full read through a long random sequence of changes', async function () {
    const x = await start();
    const next = seededRandom(6006);
    const pick = (): string => oin(Math.floor(next() * 30));
    for (let step = 0; step < 60; step++) {
      const o = pick();
      const r = next();
      // Statements may fail (a missing tenant, a duplicate): that is part of the mix.
      const statement =
        r < 0.2
          ? sql.query('INSERT INTO oingate.tenants (oin, name) VALUES ($1, $2)', [o, `n${step}`])
          : r < 0.35
            ? sql.query('DELETE FROM oingate.tenants WHERE oin = $1', [o])
            : r < 0.55
              ? sql.query(`INSERT INTO oingate.tenant_cidrs VALUES ($1, $2)`, [o, `172.16.${Math.floor(next() * 8)}.0/24`])
              : r < 0.7
                ? sql.query(`DELETE FROM oingate.tenant_cidrs WHERE oin = $1 AND cidr << '172.16.0.0/12'`, [o])
                : r < 0.85
                  ? sql.query(`UPDATE oingate.tenants SET enabled = NOT enabled WHERE oin = $1`, [o])
                  : sql.query(`INSERT INTO oingate.tenant_keys (oin, kid, alg, secret) VALUES ($1, $2, 'HS256', $3)`, [o, `k${step}`, SECRET]);
      await statement.catch(() => undefined);
    }
    await settled(x);
    expect(x.holder.lastError).to.equal(null);
    expect(x.source.fullReads).to.equal(2);
  });
});
