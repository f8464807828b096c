/**
 * Migration 007 and the record of issued tokens (contract §10): `oingate
 * token` on the PostgreSQL store records each token's jti, tenant, kid,
 * times and note (never the token), `oingate tokens` lists them as a table
 * or JSON, one tenant's with --oin, and migration 007 comes to a database
 * that already holds data without losing a row.
 */
import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { IssuedTokenRow } from '../../../src/store/postgres/issued-tokens.ts';
import { call, OIN_A, OIN_B, twoTenants } from '../../support/gate.ts';
import { addTenant, connectStore, migrateBefore, migrateStore, oingate, startPgGate, type CliResult } from '../../support/pg-gate.ts';
import { startTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const BASE64URL_128 = /^[A-Za-z0-9_-]{22,}$/;

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** A successful `oingate token` run: its token, with nothing on stderr. */
function minted(result: CliResult): string {
  expect(result.code, result.stderr).to.equal(0);
  expect(result.stderr).to.equal('');
  const token = result.stdout.trim();
  expect(token.split('.')).to.have.length(3);
  return token;
}

describe('PostgreSQL store: issued tokens (migration 007)', function () {
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
      await migrateBefore(url, '007');
      client = await connectStore(url);
      for (const tenant of twoTenants()) await addTenant(client, tenant);
    });

    after(async function () {
      await client?.end();
    });

    it('refuses to hand out a token before 007 is applied, naming the migration to run', async function () {
      const result = await oingate(['token', '--oin', OIN_A], url);
      expect(result.code).to.equal(1);
      expect(result.stdout).to.equal('');
      expect(result.stderr).to.include('run `oingate migrate`');
    });

    it('applies 007 with oingate migrate and keeps every row', async function () {
      const counts = 'SELECT (SELECT count(*)::int FROM oingate.tenants) t, (SELECT count(*)::int FROM oingate.tenant_cidrs) c, (SELECT count(*)::int FROM oingate.tenant_keys) k';
      const before = (await client.query(counts)).rows[0];
      const result = await oingate(['migrate'], url);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.include('007_issued_tokens');
      expect((await client.query(counts)).rows[0]).to.deep.equal(before).and.deep.equal({ t: 2, c: 4, k: 2 });
      const issued = await client.query('SELECT count(*)::int AS n FROM oingate.issued_tokens');
      expect(issued.rows[0]).to.deep.equal({ n: 0 });
    });

    it('then records the tokens it mints', async function () {
      const token = minted(await oingate(['token', '--oin', OIN_A], url));
      const { rows } = await client.query<IssuedTokenRow>('SELECT * FROM oingate.issued_tokens WHERE jti = $1', [payloadOf(token)['jti']]);
      expect(rows).to.have.length(1);
    });
  });

  describe('oingate token and oingate tokens', function () {
    let url: string;
    let client: pg.Client;

    before(async function () {
      url = await db.createDatabase();
      await migrateStore(url);
      client = await connectStore(url);
      for (const tenant of twoTenants()) await addTenant(client, tenant);
    });

    after(async function () {
      await client?.end();
    });

    beforeEach(async function () {
      await client.query('DELETE FROM oingate.issued_tokens');
    });

    it('records jti, tenant, kid, times and note, and never the token itself', async function () {
      const token = minted(await oingate(['token', '--oin', OIN_A, '--ttl', '10m', '--note', 'nightly export job'], url));
      const payload = payloadOf(token);
      expect(payload['jti']).to.be.a('string').and.match(BASE64URL_128);
      const { rows } = await client.query<IssuedTokenRow>('SELECT * FROM oingate.issued_tokens');
      expect(rows).to.have.length(1);
      const row = rows[0] as IssuedTokenRow;
      expect(row).to.deep.include({ jti: payload['jti'], oin: OIN_A, kid: 'a1', note: 'nightly export job' });
      expect(row.issued_at.getTime()).to.equal((payload['iat'] as number) * 1000);
      expect(row.expires_at.getTime()).to.equal((payload['exp'] as number) * 1000);
      // No column holds the token or its signature.
      const text = JSON.stringify(rows);
      expect(text).to.not.include(token.split('.')[2] as string);
      expect(Object.keys(row).sort()).to.deep.equal(['expires_at', 'issued_at', 'jti', 'kid', 'note', 'oin']);
    });

    it('gives every token its own jti of 128 bits or more', async function () {
      const results = await Promise.all([1, 2, 3, 4].map(() => oingate(['token', '--oin', OIN_B], url)));
      const jtis = results.map((result) => payloadOf(minted(result))['jti'] as string);
      for (const jti of jtis) expect(jti).to.match(BASE64URL_128);
      expect(new Set(jtis).size).to.equal(4);
      const { rows } = await client.query<{ jti: string }>('SELECT jti FROM oingate.issued_tokens ORDER BY jti');
      expect(rows.map((r) => r.jti)).to.deep.equal([...jtis].sort());
    });

    it('mints tokens that a gate with OINGATE_REQUIRE_JTI=true accepts', async function () {
      const gate = await startPgGate(url, { OINGATE_REQUIRE_JTI: 'true' });
      try {
        const token = minted(await oingate(['token', '--oin', OIN_A], url));
        const res = await call(gate.url, { oin: OIN_A }, token);
        expect(res.status, res.text).to.equal(200);
        expect(gate.logs.last()?.['reason']).to.equal('ok');
      } finally {
        await gate.close();
      }
    });

    it('lists the recorded tokens as a table, oldest first, and one tenant with --oin', async function () {
      const a = payloadOf(minted(await oingate(['token', '--oin', OIN_A], url)));
      // Made a second older, so the order is certain.
      await client.query(`UPDATE oingate.issued_tokens SET issued_at = issued_at - interval '1 second' WHERE jti = $1`, [a['jti']]);
      const b = payloadOf(minted(await oingate(['token', '--oin', OIN_B, '--ttl', '2h'], url)));
      const result = await oingate(['tokens'], url);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stderr).to.equal('');
      const lines = result.stdout.trimEnd().split('\n');
      expect(lines).to.have.length(3);
      expect((lines[0] as string).split(/\s+/)).to.deep.equal(['JTI', 'OIN', 'KID', 'ISSUED', 'EXPIRES', 'REVOKED']);
      const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
      expect((lines[1] as string).split(/\s+/)).to.deep.equal([a['jti'], OIN_A, 'a1', iso((a['iat'] as number) - 1), iso(a['exp'] as number), 'no']);
      expect((lines[2] as string).split(/\s+/)).to.deep.equal([b['jti'], OIN_B, 'b1', iso(b['iat'] as number), iso(b['exp'] as number), 'no']);
      // Columns line up: every field starts where its header does.
      const at = (line: string, field: string) => line.indexOf(field);
      expect(at(lines[1] as string, OIN_A)).to.equal(at(lines[0] as string, 'OIN'));
      expect(at(lines[2] as string, 'b1')).to.equal(at(lines[0] as string, 'KID'));

      const one = await oingate(['tokens', '--oin', OIN_B], url);
      expect(one.code, one.stderr).to.equal(0);
      const oneLines = one.stdout.trimEnd().split('\n');
      expect(oneLines).to.have.length(2);
      expect(oneLines[1]).to.include(b['jti'] as string).and.not.include(OIN_A);
    });

    it('lists them as JSON with --json, the note included', async function () {
      const a = payloadOf(minted(await oingate(['token', '--oin', OIN_A, '--note', 'for "ops" <team>'], url)));
      minted(await oingate(['token', '--oin', OIN_B], url));
      const result = await oingate(['tokens', '--oin', OIN_A, '--json'], url);
      expect(result.code, result.stderr).to.equal(0);
      const listed = JSON.parse(result.stdout) as unknown;
      expect(listed).to.deep.equal([
        {
          jti: a['jti'],
          oin: OIN_A,
          kid: 'a1',
          issuedAt: new Date((a['iat'] as number) * 1000).toISOString(),
          expiresAt: new Date((a['exp'] as number) * 1000).toISOString(),
          revoked: false,
          note: 'for "ops" <team>',
        },
      ]);
      const none = await oingate(['tokens', '--oin', '00000009999999999999', '--json'], url);
      expect(none.code, none.stderr).to.equal(0);
      expect(JSON.parse(none.stdout)).to.deep.equal([]);
    });

    it('refuses an --oin that is not an OIN', async function () {
      const result = await oingate(['tokens', '--oin', "x' OR '1'='1"], url);
      expect(result.code).to.equal(2);
      expect(result.stdout).to.equal('');
      expect(result.stderr).to.include('OINGATE_OIN_PATTERN');
    });

    it("forgets a tenant's records when the tenant is deleted", async function () {
      minted(await oingate(['token', '--oin', OIN_A], url));
      minted(await oingate(['token', '--oin', OIN_B], url));
      await client.query('DELETE FROM oingate.tenants WHERE oin = $1', [OIN_A]);
      try {
        const { rows } = await client.query<{ oin: string }>('SELECT oin FROM oingate.issued_tokens');
        expect(rows.map((r) => r.oin)).to.deep.equal([OIN_B]);
      } finally {
        await addTenant(client, twoTenants()[0]!);
      }
    });

    it('keeps the records of the tenants an oingate import keeps, and only theirs', async function () {
      const a = payloadOf(minted(await oingate(['token', '--oin', OIN_A, '--note', 'kept'], url)))['jti'];
      minted(await oingate(['token', '--oin', OIN_B], url));
      const before = (await client.query<IssuedTokenRow>('SELECT * FROM oingate.issued_tokens WHERE oin = $1', [OIN_A])).rows;
      const dir = await mkdtemp(path.join(os.tmpdir(), 'oingate-import-'));
      try {
        const file = path.join(dir, 'whitelist.json');
        await writeFile(file, JSON.stringify({ tenants: [twoTenants()[0]] }));
        const result = await oingate(['import', file], url);
        expect(result.code, result.stderr).to.equal(0);
        const after = (await client.query<IssuedTokenRow>('SELECT * FROM oingate.issued_tokens')).rows;
        expect(after).to.deep.equal(before);
        expect(after.map((r) => r.jti)).to.deep.equal([a]);
      } finally {
        await rm(dir, { recursive: true, force: true });
        await client.query('DELETE FROM oingate.tenants WHERE oin = $1', [OIN_B]);
        await addTenant(client, twoTenants()[1]!);
      }
    });

    it('refuses a row whose tenant does not exist', async function () {
      const error = await client
        .query(`INSERT INTO oingate.issued_tokens (jti, oin, kid, issued_at, expires_at) VALUES ('x', '00000009999999999999', 'k', now(), now())`)
        .then(() => null, (e: unknown) => e as { code?: string });
      expect(error?.code).to.equal('23503');
    });

    it('adds no trigger to issued_tokens: recording a token never makes a gate reload', async function () {
      const { rows } = await client.query(`SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = 'oingate.issued_tokens'::regclass`);
      expect(rows).to.deep.equal([]);
    });
  });

  describe('with an oingate.revoked_tokens table', function () {
    it('shows yes for a revoked token and no for the others', async function () {
      const url = await db.createDatabase();
      await migrateStore(url);
      const client = await connectStore(url);
      try {
        for (const tenant of twoTenants()) await addTenant(client, tenant);
        // The contract's table (§10), made here by hand: the CLI only reads it.
        await client.query(`CREATE TABLE IF NOT EXISTS oingate.revoked_tokens (oin text NOT NULL, jti text NOT NULL,
          revoked_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz, reason text, PRIMARY KEY (oin, jti))`);
        const revoked = payloadOf(minted(await oingate(['token', '--oin', OIN_A], url)))['jti'] as string;
        const kept = payloadOf(minted(await oingate(['token', '--oin', OIN_A], url)))['jti'] as string;
        await client.query('INSERT INTO oingate.revoked_tokens (oin, jti) VALUES ($1, $2)', [OIN_A, revoked]);
        // The same jti revoked for another tenant does not count.
        await client.query('INSERT INTO oingate.revoked_tokens (oin, jti) VALUES ($1, $2)', [OIN_B, kept]);
        const result = await oingate(['tokens', '--json'], url);
        expect(result.code, result.stderr).to.equal(0);
        const listed = JSON.parse(result.stdout) as Array<{ jti: string; revoked: boolean }>;
        expect(Object.fromEntries(listed.map((t) => [t.jti, t.revoked]))).to.deep.equal({ [revoked]: true, [kept]: false });
        const table = await oingate(['tokens'], url);
        const byJti = Object.fromEntries(table.stdout.trimEnd().split('\n').slice(1).map((line) => [line.split(/\s+/)[0], line.split(/\s+/)[5]]));
        expect(byJti).to.deep.equal({ [revoked]: 'yes', [kept]: 'no' });
      } finally {
        await client.end();
      }
    });
  });
});
