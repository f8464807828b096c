/**
 * Migrations 002 (tenant issuer and audience) and 003 (write-time checks):
 * they apply to a database that already holds data, old rows survive, and
 * from then on the database refuses a bad row when it is written.
 */
import { expect } from 'chai';
import pg from 'pg';
import { buildSnapshot } from '../../../src/model/snapshot.ts';
import { migrate } from '../../../src/store/postgres/migrate.ts';
import { PostgresSource } from '../../../src/store/postgres/source.ts';
import { SnapshotHolder } from '../../../src/store/holder.ts';
import { connectStore, migrateBefore, refusal, SQL_DIR } from '../../support/pg-gate.ts';
import { startTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const SECRET = 'constraints-test-secret-0123456789abcdef';
const PEM = '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n';
const OIN = '00000004000000000001';

const insertKey = 'INSERT INTO oingate.tenant_keys (oin, kid, alg, secret, public_key, not_before, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)';

describe('PostgreSQL migrations 002 and 003', function () {
  let db: TestDatabase;

  before(async function () {
    db = await startTestDatabase();
  });

  after(async function () {
    await db?.destroy();
  });

  describe('on a database that already holds data', function () {
    let url: string;
    let client: pg.Client;

    before(async function () {
      url = await db.createDatabase();
      // As a database made before 002 and 003 existed.
      await migrateBefore(url, '002');
      client = await connectStore(url);
      await client.query(`INSERT INTO oingate.tenants (oin, name) VALUES ($1, 'Old'), ('00000004000000000002', 'Older')`, [OIN]);
      await client.query(`INSERT INTO oingate.tenant_cidrs VALUES ($1, '192.0.2.0/24'), ($1, '0.0.0.0/0')`, [OIN]);
      // Rows 003 would refuse, written before it existed.
      await client.query(insertKey, [OIN, 'good', 'HS256', SECRET, null, null, null]);
      await client.query(insertKey, [OIN, 'short', 'HS256', 'short', null, null, null]);
      await client.query(insertKey, [OIN, 'none', 'none', SECRET, null, null, null]);
      await client.query(insertKey, [OIN, 'both', 'ES256', SECRET, PEM, null, null]);
      await client.query(insertKey, [OIN, 'window', 'HS256', SECRET, null, '2027-01-01Z', '2026-01-01Z']);
    });

    after(async function () {
      await client?.end();
    });

    it('applies 002 and 003 without failing on old rows that break the new rules, and loses no row', async function () {
      const before = (await client.query('SELECT (SELECT count(*)::int FROM oingate.tenants) t, (SELECT count(*)::int FROM oingate.tenant_cidrs) c, (SELECT count(*)::int FROM oingate.tenant_keys) k')).rows[0];
      const { applied } = await migrate(url, SQL_DIR);
      // Later migrations (004 on) follow; they are tested in their own files.
      expect(applied.slice(0, 2)).to.deep.equal(['002_tenant_issuer_audience', '003_write_constraints']);
      const after = (await client.query('SELECT (SELECT count(*)::int FROM oingate.tenants) t, (SELECT count(*)::int FROM oingate.tenant_cidrs) c, (SELECT count(*)::int FROM oingate.tenant_keys) k')).rows[0];
      expect(after).to.deep.equal(before).and.deep.equal({ t: 2, c: 2, k: 5 });
      const tenants = await client.query('SELECT oin, name, issuer, audience FROM oingate.tenants ORDER BY oin');
      expect(tenants.rows).to.deep.equal([
        { oin: OIN, name: 'Old', issuer: null, audience: null },
        { oin: '00000004000000000002', name: 'Older', issuer: null, audience: null },
      ]);
    });

    it('still refuses the old bad rows at load, naming each by OIN and kid or CIDR', async function () {
      const source = new PostgresSource({ connectionString: url, resyncSeconds: 0 });
      const holder = new SnapshotHolder(source, (doc) => buildSnapshot(doc, { oinPattern: /^[0-9]{20}$/u }));
      try {
        const outcome = await holder.reload();
        expect(outcome.ok).to.equal(false);
        const error = holder.lastError ?? '';
        expect(error).to.include(`tenant ${OIN} cidr "0.0.0.0/0"`);
        expect(error).not.to.match(/tenants\[\d+\]/);
        // The whole list, in the order of the rows: every issue by its row.
        const source2 = new PostgresSource({ connectionString: url, resyncSeconds: 0 });
        const document = await source2.load();
        await source2.close();
        const issues = await buildSnapshot(document, { oinPattern: /^[0-9]{20}$/u }).then(
          () => [],
          (e: { issues: { path: string }[] }) => e.issues.map((i) => source.describePath(document, i.path)),
        );
        expect(issues).to.include.members([
          `tenant ${OIN} cidr "0.0.0.0/0"`,
          `tenant ${OIN} key "short"`,
          `tenant ${OIN} key "none" alg`,
          `tenant ${OIN} key "both" secret`,
          `tenant ${OIN} key "window" expires_at`,
        ]);
      } finally {
        await holder.close();
      }
    });
  });

  describe('refuses a bad row when it is written', function () {
    let client: pg.Client;

    before(async function () {
      const url = await db.createDatabase();
      await migrate(url, SQL_DIR);
      client = await connectStore(url);
      await client.query(`INSERT INTO oingate.tenants (oin) VALUES ($1)`, [OIN]);
    });

    after(async function () {
      await client?.end();
    });

    const bad: Array<{ title: string; params: unknown[]; constraint: string }> = [
      { title: "an alg outside the list ('none')", params: ['k', 'none', SECRET, null, null, null], constraint: 'tenant_keys_alg_supported' },
      { title: "a lower-case alg ('hs256')", params: ['k', 'hs256', SECRET, null, null, null], constraint: 'tenant_keys_alg_supported' },
      { title: 'an HS256 secret of 31 bytes', params: ['k', 'HS256', 'x'.repeat(31), null, null, null], constraint: 'tenant_keys_material' },
      // 16 characters, 32 bytes? No: 'é' is 2 bytes, so 15 of them are 30 bytes.
      { title: 'an HS256 secret of 30 bytes in 15 characters', params: ['k', 'HS256', 'é'.repeat(15), null, null, null], constraint: 'tenant_keys_material' },
      { title: 'an HS512 key without a secret', params: ['k', 'HS512', null, null, null, null], constraint: 'tenant_keys_material' },
      { title: 'an HS256 key with a public key as well', params: ['k', 'HS256', SECRET, PEM, null, null], constraint: 'tenant_keys_material' },
      { title: 'an ES256 key without a public key', params: ['k', 'ES256', null, null, null, null], constraint: 'tenant_keys_material' },
      { title: 'an RS256 key with a secret as well', params: ['k', 'RS256', SECRET, PEM, null, null], constraint: 'tenant_keys_material' },
      { title: 'expires_at before not_before', params: ['k', 'HS256', SECRET, null, '2027-01-01Z', '2026-01-01Z'], constraint: 'tenant_keys_window' },
      { title: 'expires_at equal to not_before', params: ['k', 'HS256', SECRET, null, '2027-01-01Z', '2027-01-01Z'], constraint: 'tenant_keys_window' },
    ];
    for (const row of bad) {
      it(`refuses ${row.title} on INSERT`, async function () {
        const error = await refusal(client, insertKey, [OIN, ...row.params]);
        expect(error).to.include({ code: '23514', constraint: row.constraint });
      });
    }

    it('refuses an UPDATE that makes a good key bad', async function () {
      await client.query(insertKey, [OIN, 'upd', 'HS256', SECRET, null, null, null]);
      const error = await refusal(client, `UPDATE oingate.tenant_keys SET secret = 'short' WHERE oin = $1 AND kid = 'upd'`, [OIN]);
      expect(error).to.include({ code: '23514', constraint: 'tenant_keys_material' });
    });

    for (const cidr of ['0.0.0.0/0', '::/0']) {
      it(`refuses the CIDR ${cidr} on INSERT`, async function () {
        const error = await refusal(client, 'INSERT INTO oingate.tenant_cidrs (oin, cidr) VALUES ($1, $2)', [OIN, cidr]);
        expect(error).to.include({ code: '23514', constraint: 'tenant_cidrs_prefix_above_zero' });
      });
    }

    it('accepts good rows: an HS key of exactly 32 bytes, a public key alone, a window in order, a /1 range', async function () {
      await client.query(insertKey, [OIN, 'hs32', 'HS256', 'y'.repeat(32), null, null, null]);
      await client.query(insertKey, [OIN, 'es', 'ES256', null, PEM, null, null]);
      await client.query(insertKey, [OIN, 'win', 'HS384', SECRET, null, '2026-01-01Z', '2027-01-01Z']);
      await client.query(insertKey, [OIN, 'open', 'HS512', SECRET, null, null, '2027-01-01Z']);
      await client.query('INSERT INTO oingate.tenant_cidrs (oin, cidr) VALUES ($1, $2), ($1, $3)', [OIN, '128.0.0.0/1', '2001:db8::/32']);
      const { rows } = await client.query('SELECT count(*)::int AS n FROM oingate.tenant_keys WHERE oin = $1', [OIN]);
      expect(rows[0].n).to.be.at.least(4);
    });
  });
});
