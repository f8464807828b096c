/**
 * Migration 005 (tenant authentication, contract §9): the column with its
 * default and write-time check, read by the store and written by import.
 */
import { expect } from 'chai';
import { buildSnapshot } from '../../../src/model/snapshot.ts';
import { importDocument } from '../../../src/store/postgres/migrate.ts';
import { PostgresSource } from '../../../src/store/postgres/source.ts';
import { useMigratedStore, refusal } from '../../support/pg-gate.ts';

const OIN_CERT = '00000005000000000001';
const OIN_TOKEN = '00000005000000000002';
const OIN_BOTH = '00000005000000000003';

describe('PostgreSQL: tenant authentication (migration 005)', function () {
  const store = useMigratedStore();

  it('defaults to token and refuses an unknown value when the row is written', async function () {
    await store.client.query(`INSERT INTO oingate.tenants (oin) VALUES ($1)`, [OIN_TOKEN]);
    const row = (await store.client.query(`SELECT authentication FROM oingate.tenants WHERE oin = $1`, [OIN_TOKEN])).rows[0];
    expect(row.authentication).to.equal('token');
    const error = await refusal(store.client, `UPDATE oingate.tenants SET authentication = 'password' WHERE oin = $1`, [OIN_TOKEN]);
    expect(error.constraint).to.equal('tenants_authentication_known');
  });

  it('imports and loads each tenant’s authentication', async function () {
    await importDocument(store.url, {
      tenants: [
        { oin: OIN_CERT, cidrs: ['192.0.2.0/24'], authentication: 'certificate' },
        { oin: OIN_BOTH, cidrs: ['192.0.2.0/24'], authentication: 'certificate+token' },
        { oin: OIN_TOKEN, cidrs: ['192.0.2.0/24'] },
      ],
    });
    const source = new PostgresSource({ connectionString: store.url, resyncSeconds: 0 });
    try {
      const document = await source.load();
      const snapshot = await buildSnapshot(document, { oinPattern: /^[0-9]{20}$/, certificatesConfigured: true });
      expect(snapshot.tenants.get(OIN_CERT)?.authentication).to.equal('certificate');
      expect(snapshot.tenants.get(OIN_BOTH)?.authentication).to.equal('certificate+token');
      expect(snapshot.tenants.get(OIN_TOKEN)?.authentication).to.equal(undefined);
      const refused = await buildSnapshot(document, { oinPattern: /^[0-9]{20}$/, certificatesConfigured: false }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(refused?.message).to.include(OIN_CERT);
    } finally {
      await source.close();
    }
  });
});
