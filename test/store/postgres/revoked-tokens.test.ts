/**
 * Revocation on the PostgreSQL store (contract §10, sql/008): `oingate
 * revoke` by jti (recorded, or named with --oin), --all, --prune; rows any
 * SQL client writes; two gates enforcing a revocation within a second of its
 * commit although the token was cached; the same jti under another tenant
 * untouched; a JWKS tenant's tokens cut by tokens_issued_after; migration
 * 008 onto a database with data; import never taking a revocation back.
 */
import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { call, eventually, OIN_A, OIN_B, SECRET_B, signToken, twoTenants, type Response } from '../../support/gate.ts';
import { signWith, startJwksServer, testKey, type JwksServer } from '../../support/jwks.ts';
import { addTenant, connectStore, metricValue, migrateBefore, migrateStore, oingate, startPgGate, type CliResult, type PgGate } from '../../support/pg-gate.ts';
import { startTestDatabase, type TestDatabase } from '../../support/postgres.ts';

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function minted(result: CliResult): string {
  expect(result.code, result.stderr).to.equal(0);
  return result.stdout.trim();
}

function reasonOf(gate: PgGate, res: Response): Record<string, unknown> | undefined {
  return gate.logs.decisions().find((line) => line['requestId'] === res.headers['x-request-id']);
}

describe('PostgreSQL store: revoked tokens (migration 008)', function () {
  this.timeout(60_000);
  let db: TestDatabase;

  before(async function () {
    db = await startTestDatabase();
  });

  after(async function () {
    await db?.destroy();
  });

  it('applies 008 with oingate migrate to a database that holds data, losing no row', async function () {
    const url = await db.createDatabase();
    await migrateBefore(url, '008');
    const client = await connectStore(url);
    try {
      for (const tenant of twoTenants()) await addTenant(client, tenant);
      // A token recorded before 008 existed (oingate token needs the current schema to read the store).
      const jti = 'minted-before-008';
      await client.query(
        `INSERT INTO oingate.issued_tokens (jti, oin, kid, issued_at, expires_at) VALUES ($1, $2, 'a1', now(), now() + interval '1 hour')`,
        [jti, OIN_A],
      );
      const counts =
        'SELECT (SELECT count(*)::int FROM oingate.tenants) t, (SELECT count(*)::int FROM oingate.tenant_cidrs) c, ' +
        '(SELECT count(*)::int FROM oingate.tenant_keys) k, (SELECT count(*)::int FROM oingate.issued_tokens) i';
      const before = (await client.query(counts)).rows[0];
      const result = await oingate(['migrate'], url);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.include('008_revoked_tokens');
      expect((await client.query(counts)).rows[0]).to.deep.equal(before).and.deep.equal({ t: 2, c: 4, k: 2, i: 1 });
      expect((await client.query('SELECT count(*)::int AS n FROM oingate.revoked_tokens')).rows[0]).to.deep.equal({ n: 0 });
      // The token recorded before the migration can be revoked after it.
      const revoked = await oingate(['revoke', '--jti', jti], url);
      expect(revoked.code, revoked.stderr).to.equal(0);
      expect(revoked.stdout).to.include(`revoked jti ${jti} of tenant ${OIN_A}`);
    } finally {
      await client.end();
    }
  });

  describe('with gates running', function () {
    let url: string;
    let client: pg.Client;
    const gates: PgGate[] = [];

    before(async function () {
      url = await db.createDatabase();
      await migrateStore(url);
      client = await connectStore(url);
      for (const tenant of twoTenants()) await addTenant(client, tenant);
      gates.push(await startPgGate(url), await startPgGate(url));
    });

    after(async function () {
      for (const gate of gates) await gate.close();
      await client?.end();
    });

    beforeEach(async function () {
      await client.query('DELETE FROM oingate.revoked_tokens');
      await client.query('UPDATE oingate.tenants SET tokens_issued_after = NULL');
      for (const gate of gates) await eventually(async () => void expect(await metricValue(gate.adminUrl, 'oingate_revoked_tokens')).to.equal(0));
    });

    it('refuses a revoked token on both gates within a second of the commit, although both had it cached', async function () {
      const token = minted(await oingate(['token', '--oin', OIN_A], url));
      const jti = payloadOf(token)['jti'] as string;
      for (const gate of gates) {
        for (let i = 0; i < 20; i++) expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(200);
      }
      const result = await oingate(['revoke', '--jti', jti, '--reason', 'laptop stolen'], url);
      expect(result.code, result.stderr).to.equal(0);
      const committed = performance.now();
      const took = await Promise.all(
        gates.map(async (gate) => {
          await eventually(async () => void expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(401), 5_000, 10);
          return performance.now() - committed;
        }),
      );
      for (const ms of took) expect(ms).to.be.below(1_000);
      for (const gate of gates) {
        const res = await call(gate.url, { oin: OIN_A }, token);
        expect(res.status).to.equal(401);
        // The caller learns nothing more than from any other refused token.
        const { requestId, ...body } = res.json();
        const unsigned = await call(gate.url, { oin: OIN_A }, `${token.slice(0, token.lastIndexOf('.'))}.AAAA`);
        const { requestId: other, ...unsignedBody } = unsigned.json();
        expect(requestId).to.be.a('string').and.not.equal(other);
        expect(body).to.deep.equal(unsignedBody);
        const line = reasonOf(gate, res);
        expect(line).to.include({ reason: 'token_revoked', jti, oin: OIN_A });
        expect(JSON.stringify(line)).to.not.include(token.split('.')[2] as string);
        expect(await metricValue(gate.adminUrl, 'oingate_revoked_tokens')).to.equal(1);
      }
      const row = await client.query('SELECT oin, reason, expires_at FROM oingate.revoked_tokens WHERE jti = $1', [jti]);
      expect(row.rows[0]).to.deep.include({ oin: OIN_A, reason: 'laptop stolen' });
      expect((row.rows[0] as { expires_at: Date }).expires_at.getTime()).to.equal((payloadOf(token)['exp'] as number) * 1000);
      // Listed as revoked; revoking again changes nothing and says so.
      const listed = JSON.parse(minted(await oingate(['tokens', '--oin', OIN_A, '--json'], url))) as Array<Record<string, unknown>>;
      expect(listed.find((t) => t['jti'] === jti)?.['revoked']).to.equal(true);
      const again = await oingate(['revoke', '--jti', jti], url);
      expect(again.code, again.stderr).to.equal(0);
      expect(again.stdout).to.include('already revoked');
      // Other tokens of the tenant still pass.
      const other = minted(await oingate(['token', '--oin', OIN_A], url));
      expect((await call(gates[0]!.url, { oin: OIN_A }, other)).status).to.equal(200);
    });

    it("leaves the same jti of another tenant alone: revocation is per tenant", async function () {
      const shared = 'the-same-jti-everywhere';
      const tokenA = signToken({ oin: OIN_A, jti: shared });
      const tokenB = signToken({ oin: OIN_B, jti: shared }, SECRET_B, { algorithm: 'HS256', keyid: 'b1' });
      const result = await oingate(['revoke', '--jti', shared, '--oin', OIN_B, '--expires', new Date(Date.now() + 3600_000).toISOString()], url);
      expect(result.code, result.stderr).to.equal(0);
      for (const gate of gates) {
        await eventually(async () => void expect((await call(gate.url, { oin: OIN_B }, tokenB)).status).to.equal(401));
        expect((await call(gate.url, { oin: OIN_A }, tokenA)).status).to.equal(200);
      }
    });

    it('refuses a jti that is not recorded without --oin, and an --oin with no tenant, writing nothing', async function () {
      const unknown = await oingate(['revoke', '--jti', 'never-issued'], url);
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.include('not in the record of issued tokens').and.include('--oin');
      const noTenant = await oingate(['revoke', '--jti', 'never-issued', '--oin', '00000009999999999999'], url);
      expect(noTenant.code).to.equal(1);
      expect(noTenant.stderr).to.include('no tenant with OIN 00000009999999999999');
      const token = minted(await oingate(['token', '--oin', OIN_A], url));
      const wrong = await oingate(['revoke', `--jti=${payloadOf(token)['jti']}`, '--oin', OIN_B], url);
      expect(wrong.code).to.equal(1);
      expect(wrong.stderr).to.include(`was issued to tenant ${OIN_A}, not ${OIN_B}`);
      expect((await client.query('SELECT count(*)::int AS n FROM oingate.revoked_tokens')).rows[0]).to.deep.equal({ n: 0 });
      const noTenantAll = await oingate(['revoke', '--oin', '00000009999999999999', '--all'], url);
      expect(noTenantAll.code).to.equal(1);
      expect(noTenantAll.stderr).to.include('no tenant with OIN 00000009999999999999');
      // Each refused for its own reason, before anything is written.
      const usage: [string[], string][] = [
        [['revoke'], 'revoke needs --jti JTI'],
        [['revoke', '--all'], '--all takes --oin OIN and nothing else'],
        [['revoke', '--all', '--oin', OIN_A, '--jti', 'y'], '--all takes --oin OIN and nothing else'],
        [['revoke', '--prune', '--jti', 'x'], '--prune takes no other option'],
        [['revoke', '--prune', '--all'], '--prune takes no other option'],
        [['revoke', '--jti', 'x', '--expires', 'tomorrow', '--oin', OIN_A], '"tomorrow" is not an ISO-8601 date-time with a zone'],
        [['revoke', '--jti', 'x', '--oin', OIN_A, '--expires', '2026-12-01T00:00:00'], 'is not an ISO-8601 date-time with a zone'],
        [['revoke', '--jti', 'x', '--expires', '2026-12-01T00:00:00Z'], '--expires is for a token not in the record'],
        [['revoke', '--jti', 'x', '--oin', OIN_A, '--expires', '2000-01-01T00:00:00Z'], 'has passed'],
        [['revoke', '--jti='], '--jti must be 1 to 1024 characters'],
        [['revoke', '--jti', 'x'.repeat(1025), '--oin', OIN_A], '--jti must be 1 to 1024 characters'],
        [['revoke', '--jti', 'x', '--oin', OIN_A, '--reason', 'r'.repeat(1025)], '--reason must be 1 to 1024 characters'],
        [['revoke', '--jti', 'x', '--oin', "x' OR '1'='1"], 'does not match OINGATE_OIN_PATTERN'],
      ];
      for (const [args, why] of usage) {
        const bad = await oingate(args, url);
        expect(bad.code, args.join(' ')).to.equal(2);
        expect(bad.stderr, args.join(' ')).to.include(why);
      }
      expect((await client.query('SELECT count(*)::int AS n FROM oingate.revoked_tokens')).rows[0]).to.deep.equal({ n: 0 });
    });

    it('revokes every earlier token of a tenant with --all and accepts one minted after', async function () {
      const earlier = minted(await oingate(['token', '--oin', OIN_A], url));
      const otherTenant = minted(await oingate(['token', '--oin', OIN_B], url));
      expect((await call(gates[0]!.url, { oin: OIN_A }, earlier)).status).to.equal(200);
      const result = await oingate(['revoke', '--oin', OIN_A, '--all'], url);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.include(`revoked every token of tenant ${OIN_A} issued up to`);
      for (const gate of gates) {
        await eventually(async () => void expect((await call(gate.url, { oin: OIN_A }, earlier)).status).to.equal(401));
        expect(reasonOf(gate, await call(gate.url, { oin: OIN_A }, earlier))).to.include({ reason: 'token_revoked' });
        expect((await call(gate.url, { oin: OIN_B }, otherTenant)).status).to.equal(200);
      }
      // Minted after (the same second is revoked too: the CLI waits for the next).
      const later = minted(await oingate(['token', '--oin', OIN_A], url));
      for (const gate of gates) expect((await call(gate.url, { oin: OIN_A }, later)).status).to.equal(200);
      const listed = JSON.parse(minted(await oingate(['tokens', '--oin', OIN_A, '--json'], url))) as Array<Record<string, unknown>>;
      const revoked = new Map(listed.map((t) => [t['jti'], t['revoked']]));
      expect(revoked.get(payloadOf(earlier)['jti'])).to.equal(true);
      expect(revoked.get(payloadOf(later)['jti'])).to.equal(false);
    });

    it('enforces a row written by any SQL client like one the CLI wrote', async function () {
      const token = signToken({ oin: OIN_A, jti: 'from-sql' });
      expect((await call(gates[1]!.url, { oin: OIN_A }, token)).status).to.equal(200);
      await client.query(`INSERT INTO oingate.revoked_tokens (oin, jti) VALUES ($1, 'from-sql')`, [OIN_A]);
      await eventually(async () => void expect((await call(gates[1]!.url, { oin: OIN_A }, token)).status).to.equal(401));
    });

    it('prunes revocations whose token expired longer ago than the clock tolerance, and keeps the others', async function () {
      await client.query(
        `INSERT INTO oingate.revoked_tokens (oin, jti, expires_at) VALUES
           ($1, 'long-expired', now() - interval '1 hour'), ($1, 'within-tolerance', now() - interval '5 seconds'),
           ($1, 'still-valid', now() + interval '1 hour'), ($1, 'no-expiry', NULL)`,
        [OIN_A],
      );
      // The gates forget what has expired already: three are enforced.
      for (const gate of gates) await eventually(async () => void expect(await metricValue(gate.adminUrl, 'oingate_revoked_tokens')).to.equal(3));
      const result = await oingate(['revoke', '--prune'], url);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.include('pruned 1 revocation(s)');
      const left = await client.query<{ jti: string }>('SELECT jti FROM oingate.revoked_tokens ORDER BY jti');
      expect(left.rows.map((r) => r.jti)).to.deep.equal(['no-expiry', 'still-valid', 'within-tolerance']);
    });
  });

  describe('a JWKS tenant', function () {
    let idp: JwksServer;
    let url: string;
    let client: pg.Client;
    let gate: PgGate;
    const OIN_J = '00000002000000000077';
    const key = testKey('idp-1', 'RS256');

    before(async function () {
      idp = await startJwksServer();
      idp.publish('/jwks', [key.jwk]);
      url = await db.createDatabase();
      await migrateStore(url);
      client = await connectStore(url);
      await addTenant(client, { oin: OIN_J, cidrs: ['127.0.0.0/8', '::1/128'], jwksUri: idp.uri('/jwks') });
      gate = await startPgGate(url);
    });

    after(async function () {
      await gate?.close();
      await client?.end();
      await idp?.close();
    });

    it("refuses its identity provider's earlier tokens by tokens_issued_after, and accepts later ones", async function () {
      const now = Math.floor(Date.now() / 1000);
      const earlier = signWith(key, { oin: OIN_J, iat: now - 60, exp: now + 600 });
      await eventually(async () => void expect((await call(gate.url, { oin: OIN_J }, earlier)).status).to.equal(200));
      await client.query(`UPDATE oingate.tenants SET tokens_issued_after = to_timestamp($2) WHERE oin = $1`, [OIN_J, now - 10]);
      await eventually(async () => void expect((await call(gate.url, { oin: OIN_J }, earlier)).status).to.equal(401));
      const later = signWith(key, { oin: OIN_J, iat: now - 5, exp: now + 600 });
      expect((await call(gate.url, { oin: OIN_J }, later)).status).to.equal(200);
      const noIat = jwt.sign({ oin: OIN_J, exp: now + 600 }, key.privateKey, { algorithm: 'RS256', keyid: key.kid, noTimestamp: true });
      expect((await call(gate.url, { oin: OIN_J }, noIat)).status).to.equal(401);
      expect(idp.hits('/jwks')).to.equal(1);
    });
  });

  it('keeps every revocation and the later tokens_issued_after through oingate import', async function () {
    const url = await db.createDatabase();
    await migrateStore(url);
    const client = await connectStore(url);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'oingate-import-'));
    try {
      for (const tenant of twoTenants()) await addTenant(client, tenant);
      await client.query(`INSERT INTO oingate.revoked_tokens (oin, jti) VALUES ($1, 'in-db')`, [OIN_A]);
      await client.query(`UPDATE oingate.tenants SET tokens_issued_after = '2030-01-01T00:00:00Z' WHERE oin = $1`, [OIN_A]);
      const file = path.join(dir, 'whitelist.json');
      const tenants = twoTenants().map((t, i) => (i === 0 ? { ...t, tokensIssuedAfter: '2029-01-01T00:00:00Z' } : { ...t, tokensIssuedAfter: '2029-06-01T00:00:00Z' }));
      await writeFile(file, JSON.stringify({ tenants, revokedTokens: [{ jti: 'in-file', oin: OIN_B, reason: 'from the file' }] }));
      const result = await oingate(['import', file], url);
      expect(result.code, result.stderr).to.equal(0);
      const revoked = await client.query('SELECT oin, jti, reason FROM oingate.revoked_tokens ORDER BY jti');
      expect(revoked.rows).to.deep.equal([
        { oin: OIN_A, jti: 'in-db', reason: null },
        { oin: OIN_B, jti: 'in-file', reason: 'from the file' },
      ]);
      const cutoffs = await client.query<{ oin: string; t: Date }>('SELECT oin, tokens_issued_after AS t FROM oingate.tenants ORDER BY oin');
      expect(cutoffs.rows.map((r) => [r.oin, r.t.toISOString()])).to.deep.equal([
        [OIN_A, '2030-01-01T00:00:00.000Z'],
        [OIN_B, '2029-06-01T00:00:00.000Z'],
      ]);
    } finally {
      await client.end();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
