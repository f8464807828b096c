import { mkdtemp, readdir, rm, writeFile, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import type { WhitelistDocument } from '../../../src/model/document.ts';
import { importDocument, migrate } from '../../../src/store/postgres/migrate.ts';
import { PostgresSource } from '../../../src/store/postgres/source.ts';
import { startTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const SQL_DIR = fileURLToPath(new URL('../../../sql', import.meta.url));

async function query<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

async function load(url: string): Promise<unknown> {
  const source = new PostgresSource({ connectionString: url, resyncSeconds: 60 });
  try {
    return await source.load();
  } finally {
    await source.close();
  }
}

const HS_SECRET = 'a-shared-secret-of-at-least-32-bytes!!';
const PEM = '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n';

/** Tenants deliberately out of order, optional fields left out on some. */
const DOCUMENT: WhitelistDocument = {
  tenants: [
    {
      oin: '00000009999999990000',
      cidrs: ['2001:db8:1::/48'],
      jwksUri: 'https://idp.example/jwks.json',
    },
    {
      oin: '00000001234567890000',
      name: 'Gemeente Voorbeeld',
      enabled: false,
      cidrs: ['198.51.100.7/32', '203.0.113.0/24'],
      keys: [
        { kid: 'gv-2026', alg: 'HS256', secret: HS_SECRET },
        {
          kid: 'gv-ec',
          alg: 'ES256',
          publicKey: PEM,
          enabled: false,
          notBefore: '2026-01-01T00:00:00Z',
          expiresAt: '2027-06-30T12:34:56.789+02:00',
        },
      ],
    },
  ],
};

/** What load() gives back for DOCUMENT: ordered by oin, defaults filled in, times in UTC. */
const LOADED = {
  tenants: [
    {
      oin: '00000001234567890000',
      name: 'Gemeente Voorbeeld',
      enabled: false,
      cidrs: ['198.51.100.7/32', '203.0.113.0/24'],
      keys: [
        { kid: 'gv-2026', alg: 'HS256', secret: HS_SECRET, enabled: true },
        {
          kid: 'gv-ec',
          alg: 'ES256',
          publicKey: PEM,
          enabled: false,
          notBefore: '2026-01-01T00:00:00.000Z',
          expiresAt: '2027-06-30T10:34:56.789Z',
        },
      ],
    },
    {
      oin: '00000009999999990000',
      name: '',
      enabled: true,
      cidrs: ['2001:db8:1::/48'],
      keys: [],
      jwksUri: 'https://idp.example/jwks.json',
    },
  ],
};

describe('PostgreSQL migrate and import', function () {
  let db: TestDatabase;
  let sqlFiles: string[];

  before(async function () {
    db = await startTestDatabase();
    sqlFiles = (await readdir(SQL_DIR))
      .filter((f) => f.endsWith('.sql'))
      .sort()
      .map((f) => f.slice(0, -4));
  });

  after(async function () {
    await db?.destroy();
  });

  describe('migrate', function () {
    it('applies every sql/ file once, in name order, and a second run applies nothing', async function () {
      const url = await db.createDatabase();
      expect(sqlFiles).to.include('001_schema');
      const first = await migrate(url, SQL_DIR);
      expect(first.applied).to.deep.equal(sqlFiles);
      const second = await migrate(url, SQL_DIR);
      expect(second.applied).to.deep.equal([]);
      const rows = await query<{ version: string }>(url, 'SELECT version FROM oingate.schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).to.deep.equal(sqlFiles);
    });

    it("creates exactly the contract's tables, columns, keys and cascades", async function () {
      const url = await db.createDatabase();
      await migrate(url, SQL_DIR);
      const columns = await query(
        url,
        `SELECT table_name, column_name, data_type, is_nullable, column_default
           FROM information_schema.columns WHERE table_schema = 'oingate'
          ORDER BY table_name, ordinal_position`,
      );
      const col = (table: string, name: string, type: string, nullable: boolean, dflt: string | null = null) => ({
        table_name: table,
        column_name: name,
        data_type: type,
        is_nullable: nullable ? 'YES' : 'NO',
        column_default: dflt,
      });
      expect(columns).to.deep.equal([
        col('issued_tokens', 'jti', 'text', false),
        col('issued_tokens', 'oin', 'text', false),
        col('issued_tokens', 'kid', 'text', false),
        col('issued_tokens', 'issued_at', 'timestamp with time zone', false),
        col('issued_tokens', 'expires_at', 'timestamp with time zone', false),
        col('issued_tokens', 'note', 'text', true),
        col('revoked_tokens', 'oin', 'text', false),
        col('revoked_tokens', 'jti', 'text', false),
        col('revoked_tokens', 'revoked_at', 'timestamp with time zone', false, 'now()'),
        col('revoked_tokens', 'expires_at', 'timestamp with time zone', true),
        col('revoked_tokens', 'reason', 'text', true),
        col('schema_migrations', 'version', 'text', false),
        col('schema_migrations', 'applied_at', 'timestamp with time zone', false, 'now()'),
        col('tenant_cidrs', 'oin', 'text', false),
        col('tenant_cidrs', 'cidr', 'cidr', false),
        col('tenant_keys', 'oin', 'text', false),
        col('tenant_keys', 'kid', 'text', false),
        col('tenant_keys', 'alg', 'text', false),
        col('tenant_keys', 'secret', 'text', true),
        col('tenant_keys', 'public_key', 'text', true),
        col('tenant_keys', 'enabled', 'boolean', false, 'true'),
        col('tenant_keys', 'not_before', 'timestamp with time zone', true),
        col('tenant_keys', 'expires_at', 'timestamp with time zone', true),
        col('tenants', 'oin', 'text', false),
        col('tenants', 'name', 'text', false, "''::text"),
        col('tenants', 'enabled', 'boolean', false, 'true'),
        col('tenants', 'jwks_uri', 'text', true),
        col('tenants', 'issuer', 'text', true),
        col('tenants', 'audience', 'text', true),
        col('tenants', 'rate_limit_per_second', 'integer', true),
        col('tenants', 'rate_limit_burst', 'integer', true),
        col('tenants', 'authentication', 'text', false, "'token'::text"),
        col('tenants', 'tokens_issued_after', 'timestamp with time zone', true),
      ]);
      const constraints = await query(
        url,
        `SELECT conrelid::regclass::text AS table, contype AS type, pg_get_constraintdef(oid) AS def
           FROM pg_constraint WHERE connamespace = 'oingate'::regnamespace ORDER BY 1, 2, 3`,
      );
      // The write-time checks (003) are tested by what they refuse, in constraints.test.ts.
      expect(constraints.filter((c) => (c as { type: string }).type !== 'c')).to.deep.equal([
        { table: 'oingate.issued_tokens', type: 'f', def: 'FOREIGN KEY (oin) REFERENCES oingate.tenants(oin) ON DELETE CASCADE' },
        { table: 'oingate.issued_tokens', type: 'p', def: 'PRIMARY KEY (jti)' },
        // No foreign key on purpose: deleting a tenant must not drop its revocations (sql/008).
        { table: 'oingate.revoked_tokens', type: 'p', def: 'PRIMARY KEY (oin, jti)' },
        { table: 'oingate.schema_migrations', type: 'p', def: 'PRIMARY KEY (version)' },
        { table: 'oingate.tenant_cidrs', type: 'f', def: 'FOREIGN KEY (oin) REFERENCES oingate.tenants(oin) ON DELETE CASCADE' },
        { table: 'oingate.tenant_cidrs', type: 'p', def: 'PRIMARY KEY (oin, cidr)' },
        { table: 'oingate.tenant_keys', type: 'f', def: 'FOREIGN KEY (oin) REFERENCES oingate.tenants(oin) ON DELETE CASCADE' },
        { table: 'oingate.tenant_keys', type: 'p', def: 'PRIMARY KEY (oin, kid)' },
        { table: 'oingate.tenants', type: 'p', def: 'PRIMARY KEY (oin)' },
      ]);
    });

    it('installs statement-level triggers for insert, update, delete and truncate on the whitelist tables and revoked_tokens', async function () {
      const url = await db.createDatabase();
      await migrate(url, SQL_DIR);
      // tgtype bits: 1 row-level, 4 insert, 8 delete, 16 update, 32 truncate.
      const rows = await query<{ table: string; tgtype: number }>(
        url,
        `SELECT tgrelid::regclass::text AS table, tgtype FROM pg_trigger
          WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'oingate.%' ORDER BY 1`,
      );
      // One trigger per event (006: transition tables allow one event each).
      const events = new Map<string, number>();
      for (const r of rows) {
        expect(r.tgtype & 1, `${r.table} row-level`).to.equal(0);
        events.set(r.table, (events.get(r.table) ?? 0) | (r.tgtype & (4 | 8 | 16 | 32)));
      }
      expect([...events.keys()]).to.deep.equal(['oingate.revoked_tokens', 'oingate.tenant_cidrs', 'oingate.tenant_keys', 'oingate.tenants']);
      for (const [table, mask] of events) expect(mask, `${table} events`).to.equal(4 | 8 | 16 | 32);
    });

    it('lets concurrent runs apply each file exactly once', async function () {
      const url = await db.createDatabase();
      const runs = await Promise.all([migrate(url, SQL_DIR), migrate(url, SQL_DIR), migrate(url, SQL_DIR)]);
      const applied = runs.flatMap((r) => r.applied).sort();
      expect(applied).to.deep.equal(sqlFiles);
    });

    it('rolls back a failing file whole, records nothing for it, and names it in the error', async function () {
      const url = await db.createDatabase();
      const dir = await mkdtemp(path.join(os.tmpdir(), 'oingate-sql-'));
      try {
        await copyFile(path.join(SQL_DIR, '001_schema.sql'), path.join(dir, '001_schema.sql'));
        await writeFile(
          path.join(dir, '002_broken.sql'),
          'CREATE TABLE oingate.half_done (x int);\nSELECT no_such_function();\n',
        );
        const err = await migrate(url, dir).then(
          () => null,
          (e: unknown) => e as Error,
        );
        expect(err).to.be.instanceOf(Error);
        expect(err!.message).to.include('002_broken.sql');
        const versions = await query<{ version: string }>(url, 'SELECT version FROM oingate.schema_migrations');
        expect(versions.map((r) => r.version)).to.deep.equal(['001_schema']);
        const half = await query(url, "SELECT to_regclass('oingate.half_done') AS t");
        expect(half[0]?.t).to.equal(null);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('reports a connection failure with the password masked', async function () {
      const err = await migrate('postgres://postgres:s3cr3t-pw@127.0.0.1:1/nothing', SQL_DIR).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err).to.be.instanceOf(Error);
      expect(err!.message).to.include('postgres://postgres@127.0.0.1:1/nothing');
      expect(inspect(err)).not.to.include('s3cr3t-pw');
    });
  });

  describe('importDocument', function () {
    let url: string;

    before(async function () {
      url = await db.createDatabase();
      await migrate(url, SQL_DIR);
    });

    it('stores a document that load() gives back the same, ordered by oin with defaults filled in', async function () {
      expect(await importDocument(url, DOCUMENT)).to.deep.equal({ tenants: 2 });
      expect(await load(url)).to.deep.equal(LOADED);
    });

    it("writes a tenant's own issuer and audience, which load() gives back", async function () {
      // Typed loosely: the document type gains the fields with the model's validation of them.
      const withClaims = {
        tenants: [
          { oin: '00000005555555550000', cidrs: ['192.0.2.0/24'], issuer: 'https://idp.example', audience: 'gate-5' },
          { oin: '00000005555555550001', cidrs: ['192.0.2.0/24'] },
        ],
      } as WhitelistDocument;
      await importDocument(url, withClaims);
      const rows = await query(url, 'SELECT oin, issuer, audience FROM oingate.tenants ORDER BY oin');
      expect(rows).to.deep.equal([
        { oin: '00000005555555550000', issuer: 'https://idp.example', audience: 'gate-5' },
        { oin: '00000005555555550001', issuer: null, audience: null },
      ]);
      const loaded = (await load(url)) as { tenants: Record<string, unknown>[] };
      expect(loaded.tenants[0]).to.include({ issuer: 'https://idp.example', audience: 'gate-5' });
      expect(loaded.tenants[1]).not.to.have.any.keys('issuer', 'audience');
    });

    it('replaces the previous whitelist entirely', async function () {
      await importDocument(url, DOCUMENT);
      const next: WhitelistDocument = {
        tenants: [{ oin: '00000005555555550000', name: 'Nieuw', cidrs: ['192.0.2.0/24'], keys: [] }],
      };
      expect(await importDocument(url, next)).to.deep.equal({ tenants: 1 });
      expect(await load(url)).to.deep.equal({
        tenants: [{ oin: '00000005555555550000', name: 'Nieuw', enabled: true, cidrs: ['192.0.2.0/24'], keys: [] }],
      });
      const counts = await query(
        url,
        `SELECT (SELECT count(*)::int FROM oingate.tenant_cidrs) AS cidrs, (SELECT count(*)::int FROM oingate.tenant_keys) AS keys`,
      );
      expect(counts[0]).to.deep.equal({ cidrs: 1, keys: 0 });
    });

    it('replaces rather than merges when another client is writing at the same moment', async function () {
      await importDocument(url, DOCUMENT);
      const writer = new pg.Client({ connectionString: url });
      writer.on('error', () => undefined);
      await writer.connect();
      try {
        await writer.query('BEGIN');
        await writer.query("INSERT INTO oingate.tenants (oin, name) VALUES ('00000006666666660000', 'concurrent')");
        const next: WhitelistDocument = { tenants: [{ oin: '00000005555555550000', cidrs: ['192.0.2.0/24'] }] };
        let imported = false;
        const importing = importDocument(url, next).then(() => (imported = true));
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(imported, 'the import waits for the open write').to.equal(false);
        await writer.query('COMMIT');
        await importing;
      } finally {
        await writer.end();
      }
      const oins = await query<{ oin: string }>(url, 'SELECT oin FROM oingate.tenants ORDER BY oin');
      expect(oins.map((r) => r.oin), 'only the imported tenant, not a merge').to.deep.equal(['00000005555555550000']);
    });

    it('is all or nothing: a row the database refuses leaves the previous whitelist in place', async function () {
      await importDocument(url, DOCUMENT);
      const bad: WhitelistDocument = {
        tenants: [
          { oin: '00000007777777770000', cidrs: ['192.0.2.0/24'] },
          {
            oin: '00000008888888880000',
            cidrs: ['198.51.100.0/24'],
            keys: [
              { kid: 'dup', alg: 'HS256', secret: HS_SECRET },
              { kid: 'dup', alg: 'HS256', secret: HS_SECRET },
            ],
          },
        ],
      };
      const err = await importDocument(url, bad).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err).to.be.instanceOf(Error);
      expect(err!.message).to.match(/duplicate key/);
      expect(await load(url)).to.deep.equal(LOADED);
    });
  });
});
