/**
 * Migration 004: tenants' rate limits in oingate.tenants. The database
 * refuses a bad limit when it is written, the source hands the columns to
 * the model as `rateLimit`, a bad row that got past the database still
 * refuses the whitelist, `oingate import` writes the columns, and a changed
 * row applies live.
 */
import { expect } from 'chai';
import { buildSnapshot } from '../../../src/model/snapshot.ts';
import { importDocument } from '../../../src/store/postgres/migrate.ts';
import { PostgresSource } from '../../../src/store/postgres/source.ts';
import { SnapshotHolder } from '../../../src/store/holder.ts';
import { call, eventually, OIN_A, tokenFor, twoTenants, type TenantSpec } from '../../support/gate.ts';
import { addTenant, useMigratedStore, refusal, startPgGate } from '../../support/pg-gate.ts';

const OIN = '00000004000000000001';
const OTHER = '00000004000000000002';
const PATTERN = /^[0-9]{20}$/u;

async function load(url: string): Promise<Record<string, unknown>[]> {
  const source = new PostgresSource({ connectionString: url, resyncSeconds: 0 });
  try {
    return (await source.load()).tenants as unknown as Record<string, unknown>[];
  } finally {
    await source.close();
  }
}

const INSERT = 'INSERT INTO oingate.tenants (oin, rate_limit_per_second, rate_limit_burst) VALUES ($1, $2, $3)';

describe('PostgreSQL store: rate limits (migration 004)', function () {
  const store = useMigratedStore();

  beforeEach(async function () {
    await store.client.query('DELETE FROM oingate.tenants');
  });

  const bad: Array<[string, number | null, number | null, string]> = [
    ['a rate of zero', 0, null, 'tenants_rate_limit_per_second_range'],
    ['a negative rate', -3, null, 'tenants_rate_limit_per_second_range'],
    ['a rate over 1000000', 1_000_001, null, 'tenants_rate_limit_per_second_range'],
    ['a burst of zero', 5, 0, 'tenants_rate_limit_burst_range'],
    ['a burst over 1000000', 5, 1_000_001, 'tenants_rate_limit_burst_range'],
    ['a burst without a rate', null, 5, 'tenants_rate_limit_burst_needs_rate'],
  ];
  for (const [what, perSecond, burst, constraint] of bad) {
    it(`refuses ${what} when the row is written`, async function () {
      const error = await refusal(store.client, INSERT, [OIN, perSecond, burst]);
      expect(error.code).to.equal('23514');
      expect(error.constraint).to.equal(constraint);
      // An UPDATE of an existing row is checked too.
      await store.client.query(INSERT, [OIN, null, null]);
      const update = await refusal(store.client, 'UPDATE oingate.tenants SET rate_limit_per_second = $2, rate_limit_burst = $3 WHERE oin = $1', [OIN, perSecond, burst]);
      expect(update.constraint).to.equal(constraint);
    });
  }

  it('refuses a fraction, which an integer column cannot hold', async function () {
    // Sent as text, as the driver sends every parameter: refused, never rounded.
    const error = await refusal(store.client, INSERT, [OIN, '2.5', null]);
    expect(error.code).to.equal('22P02');
  });

  it('hands the columns to the model as rateLimit: both, rate only, or none', async function () {
    await store.client.query(INSERT, [OIN, 10, 25]);
    await store.client.query(INSERT, [OTHER, 7, null]);
    await store.client.query(INSERT, ['00000004000000000003', null, null]);
    const tenants = await load(store.url);
    expect(tenants.map((t) => t['rateLimit'])).to.deep.equal([{ perSecond: 10, burst: 25 }, { perSecond: 7 }, undefined]);
    const snapshot = await buildSnapshot({ tenants: tenants.map((t) => ({ ...t, cidrs: ['192.0.2.0/24'] })) }, { oinPattern: PATTERN });
    expect(snapshot.tenants.get(OIN)?.rateLimit).to.deep.equal({ perSecond: 10, burst: 25 });
    expect(snapshot.tenants.get(OTHER)?.rateLimit).to.deep.equal({ perSecond: 7, burst: 7 });
  });

  it('still refuses at load a bad row the database did not check, naming its tenant and column', async function () {
    // As rows written while the checks were dropped: the database no longer vouches for them.
    await store.client.query('ALTER TABLE oingate.tenants DROP CONSTRAINT tenants_rate_limit_per_second_range, DROP CONSTRAINT tenants_rate_limit_burst_needs_rate');
    const holder = new SnapshotHolder(new PostgresSource({ connectionString: store.url, resyncSeconds: 0 }), (doc) => buildSnapshot(doc, { oinPattern: PATTERN }));
    try {
      await store.client.query(INSERT, [OIN, 0, null]);
      await store.client.query(INSERT, [OTHER, null, 4]);
      const outcome = await holder.reload();
      expect(outcome.ok).to.equal(false);
      expect(holder.lastError).to.include(`tenant ${OIN} rate_limit_per_second: 0 must be a whole number`);
      expect(holder.lastError).to.not.match(/tenants\[\d+\]/);
      // Every issue by its row: the burst without a rate as well.
      const document = await holder.source.load();
      const issues = await buildSnapshot(document, { oinPattern: PATTERN }).then(
        () => [],
        (e: { issues: { path: string }[] }) => e.issues.map((i) => holder.source.describePath?.(document, i.path)),
      );
      expect(issues).to.deep.equal([`tenant ${OIN} rate_limit_per_second`, `tenant ${OTHER} rate_limit_per_second`]);
    } finally {
      await holder.close();
      await store.client.query('DELETE FROM oingate.tenants');
      await store.client.query(`ALTER TABLE oingate.tenants
        ADD CONSTRAINT tenants_rate_limit_per_second_range CHECK (rate_limit_per_second IS NULL OR rate_limit_per_second BETWEEN 1 AND 1000000) NOT VALID,
        ADD CONSTRAINT tenants_rate_limit_burst_needs_rate CHECK (rate_limit_burst IS NULL OR rate_limit_per_second IS NOT NULL) NOT VALID`);
    }
  });

  it('writes the limits on import (oingate import), and reads them back the same', async function () {
    await importDocument(store.url, {
      tenants: [
        { oin: OIN, cidrs: ['192.0.2.0/24'], rateLimit: { perSecond: 3, burst: 9 } },
        { oin: OTHER, cidrs: ['198.51.100.0/24'], rateLimit: { perSecond: 4 } },
        { oin: '00000004000000000003', cidrs: ['203.0.113.0/24'] },
      ],
    });
    const { rows } = await store.client.query('SELECT oin, rate_limit_per_second, rate_limit_burst FROM oingate.tenants ORDER BY oin');
    expect(rows).to.deep.equal([
      { oin: OIN, rate_limit_per_second: 3, rate_limit_burst: 9 },
      { oin: OTHER, rate_limit_per_second: 4, rate_limit_burst: null },
      { oin: '00000004000000000003', rate_limit_per_second: null, rate_limit_burst: null },
    ]);
    expect((await load(store.url)).map((t) => t['rateLimit'])).to.deep.equal([{ perSecond: 3, burst: 9 }, { perSecond: 4 }, undefined]);
  });

  it('applies a limit changed in its row to a running gate', async function () {
    const tenant = twoTenants()[0] as TenantSpec;
    await addTenant(store.client, tenant);
    await store.client.query('UPDATE oingate.tenants SET rate_limit_per_second = 1, rate_limit_burst = 1 WHERE oin = $1', [OIN_A]);
    const gate = await startPgGate(store.url);
    try {
      const statuses = async (n: number) => {
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status);
        return out;
      };
      expect(await statuses(2)).to.deep.equal([200, 429]);
      await store.client.query('UPDATE oingate.tenants SET rate_limit_burst = 20 WHERE oin = $1', [OIN_A]);
      await eventually(() => void expect(gate.service.holder.current?.tenants.get(OIN_A)?.rateLimit?.burst).to.equal(20));
      expect(await statuses(5)).to.deep.equal([200, 200, 200, 200, 200]);
      await store.client.query('UPDATE oingate.tenants SET rate_limit_per_second = NULL, rate_limit_burst = NULL WHERE oin = $1', [OIN_A]);
      await eventually(() => void expect(gate.service.holder.current?.tenants.get(OIN_A)?.rateLimit).to.equal(undefined));
      expect((await statuses(30)).every((s) => s === 200)).to.equal(true);
    } finally {
      await gate.close();
    }
  });
});
