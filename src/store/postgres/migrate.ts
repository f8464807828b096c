/**
 * Schema migration and whole-whitelist import for the PostgreSQL store
 * (`oingate migrate`, `oingate import FILE`).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { TenantDocument, WhitelistDocument } from '../../model/document.ts';
import { passwordScrubber, describeConnectionString, storeError } from './errors.ts';

/** Advisory lock key ("oing", 1) held while a migration file is applied. */
const MIGRATION_LOCK = [0x6f696e67, 1] as const;

/** Connects a client for one admin command; every error it produces is rephrased without the password. */
export async function withClient<T>(
  connectionString: string,
  what: string,
  fn: (client: pg.Client, step: (label: string) => void) => Promise<T>,
): Promise<T> {
  const description = describeConnectionString(connectionString);
  const scrub = passwordScrubber(connectionString);
  let label = '';
  const fail = (err: unknown): never => {
    throw storeError(err, label ? `${what} (${label})` : what, description, scrub);
  };
  let client: pg.Client;
  try {
    client = new pg.Client({ connectionString, application_name: 'oingate-admin', connectionTimeoutMillis: 10000 });
  } catch (err) {
    return fail(err);
  }
  // A server that goes away mid-way is reported by the failing query;
  // without a listener the 'error' event would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client, (l) => {
      label = l;
    });
  } catch (err) {
    return fail(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Applies the `*.sql` files of `sqlDir` in name order. Each file runs in its
 * own transaction together with its row in `oingate.schema_migrations`
 * (version = file name without `.sql`), under a transaction-scoped advisory
 * lock, so concurrent runs apply every file exactly once. Files already
 * recorded are skipped.
 */
export async function migrate(connectionString: string, sqlDir: string): Promise<{ applied: string[] }> {
  const files = (await readdir(sqlDir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name.endsWith('.sql'))
    .map((e) => e.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const applied: string[] = [];
  await withClient(connectionString, 'cannot migrate PostgreSQL store', async (client, step) => {
    for (const file of files) {
      const version = file.slice(0, -'.sql'.length);
      step(file);
      const sql = await readFile(path.join(sqlDir, file), 'utf8');
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock($1, $2)', [...MIGRATION_LOCK]);
        // Read after the lock is held: in READ COMMITTED this statement sees
        // whatever a concurrent migrator committed while we waited.
        // (Two statements: a reference to a missing table fails at parse time.)
        const table = await client.query<{ exists: boolean }>(
          `SELECT to_regclass('oingate.schema_migrations') IS NOT NULL AS exists`,
        );
        const done =
          table.rows[0]?.exists === true &&
          (await client.query('SELECT 1 FROM oingate.schema_migrations WHERE version = $1', [version])).rowCount === 1;
        if (done) {
          await client.query('ROLLBACK');
          continue;
        }
        await client.query(sql);
        await client.query('INSERT INTO oingate.schema_migrations (version) VALUES ($1)', [version]);
        await client.query('COMMIT');
        applied.push(version);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
  });
  return { applied };
}

/**
 * Replaces the whole whitelist with `doc` in one transaction: concurrent
 * readers see either the old or the new whitelist, and listeners get one
 * notification. The caller validates `doc`.
 */
export async function importDocument(connectionString: string, doc: WhitelistDocument): Promise<{ tenants: number }> {
  const t = {
    oin: [] as string[],
    name: [] as string[],
    enabled: [] as boolean[],
    jwks: [] as (string | null)[],
    issuer: [] as (string | null)[],
    audience: [] as (string | null)[],
    perSecond: [] as (number | null)[],
    burst: [] as (number | null)[],
    authentication: [] as string[],
    tokensIssuedAfter: [] as (string | null)[],
  };
  const r = { oin: [] as string[], jti: [] as string[], expiresAt: [] as (string | null)[], reason: [] as (string | null)[] };
  for (const entry of doc.revokedTokens ?? []) {
    r.oin.push(entry.oin);
    r.jti.push(entry.jti);
    r.expiresAt.push(entry.expiresAt ?? null);
    r.reason.push(entry.reason ?? null);
  }
  const c = { oin: [] as string[], cidr: [] as string[] };
  const k = {
    oin: [] as string[],
    kid: [] as string[],
    alg: [] as string[],
    secret: [] as (string | null)[],
    publicKey: [] as (string | null)[],
    enabled: [] as boolean[],
    notBefore: [] as (string | null)[],
    expiresAt: [] as (string | null)[],
  };
  for (const tenant of doc.tenants as Array<TenantDocument & { issuer?: string; audience?: string; authentication?: string }>) {
    t.oin.push(tenant.oin);
    t.name.push(tenant.name ?? '');
    t.enabled.push(tenant.enabled ?? true);
    t.jwks.push(tenant.jwksUri ?? null);
    t.issuer.push(tenant.issuer ?? null);
    t.audience.push(tenant.audience ?? null);
    t.perSecond.push(tenant.rateLimit?.perSecond ?? null);
    t.burst.push(tenant.rateLimit?.burst ?? null);
    t.authentication.push(tenant.authentication ?? 'token');
    t.tokensIssuedAfter.push(tenant.tokensIssuedAfter ?? null);
    for (const cidr of tenant.cidrs) {
      c.oin.push(tenant.oin);
      c.cidr.push(cidr);
    }
    for (const key of tenant.keys ?? []) {
      k.oin.push(tenant.oin);
      k.kid.push(key.kid);
      k.alg.push(key.alg);
      k.secret.push(key.secret ?? null);
      k.publicKey.push(key.publicKey ?? null);
      k.enabled.push(key.enabled ?? true);
      k.notBefore.push(key.notBefore ?? null);
      k.expiresAt.push(key.expiresAt ?? null);
    }
  }
  await withClient(connectionString, 'cannot import into PostgreSQL store', async (client, step) => {
    await client.query('BEGIN');
    try {
      step('lock');
      // Writers wait until the import commits, so it replaces the whitelist
      // rather than merging with a concurrent edit; readers (the gates) are
      // not blocked, which TRUNCATE's exclusive lock would do.
      await client.query(
        'LOCK TABLE oingate.tenants, oingate.tenant_cidrs, oingate.tenant_keys, oingate.revoked_tokens IN SHARE ROW EXCLUSIVE MODE',
      );
      step('revocations');
      // An import never takes a revocation back: the rows of revoked_tokens
      // stay (the file's are added), and a tenant's tokens_issued_after is
      // the later of the database's and the file's. Undoing a revocation is
      // a deliberate DELETE or UPDATE, never a side effect of an import.
      await client.query(
        `CREATE TEMPORARY TABLE oingate_kept_cutoffs ON COMMIT DROP AS
           SELECT oin, tokens_issued_after FROM oingate.tenants WHERE tokens_issued_after IS NOT NULL`,
      );
      step('issued tokens');
      // The record of issued tokens is not part of the whitelist: the rows of
      // tenants that stay are kept across the delete below, which cascades.
      const issued = await client.query<{ exists: boolean }>(`SELECT to_regclass('oingate.issued_tokens') IS NOT NULL AS exists`);
      const keepIssued = issued.rows[0]?.exists === true;
      if (keepIssued) {
        // Locked too, so that no token is recorded between the copy and the delete.
        await client.query('LOCK TABLE oingate.issued_tokens IN SHARE ROW EXCLUSIVE MODE');
        await client.query('CREATE TEMPORARY TABLE oingate_kept_issued_tokens (LIKE oingate.issued_tokens) ON COMMIT DROP');
        await client.query('INSERT INTO oingate_kept_issued_tokens SELECT * FROM oingate.issued_tokens WHERE oin = ANY($1::text[])', [t.oin]);
      }
      step('delete');
      await client.query('DELETE FROM oingate.tenants'); // cascades to cidrs, keys and issued tokens
      step('tenants');
      await client.query(
        `INSERT INTO oingate.tenants (oin, name, enabled, jwks_uri, issuer, audience, rate_limit_per_second, rate_limit_burst, authentication,
                                      tokens_issued_after)
         SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], $7::integer[], $8::integer[], $9::text[],
                              $10::timestamptz[])`,
        [t.oin, t.name, t.enabled, t.jwks, t.issuer, t.audience, t.perSecond, t.burst, t.authentication, t.tokensIssuedAfter],
      );
      await client.query(
        `UPDATE oingate.tenants t SET tokens_issued_after = GREATEST(t.tokens_issued_after, k.tokens_issued_after)
           FROM oingate_kept_cutoffs k WHERE k.oin = t.oin`,
      );
      step('cidrs');
      await client.query(
        `INSERT INTO oingate.tenant_cidrs (oin, cidr) SELECT * FROM unnest($1::text[], $2::cidr[])`,
        [c.oin, c.cidr],
      );
      step('keys');
      await client.query(
        `INSERT INTO oingate.tenant_keys (oin, kid, alg, secret, public_key, enabled, not_before, expires_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[],
                              $7::timestamptz[], $8::timestamptz[])`,
        [k.oin, k.kid, k.alg, k.secret, k.publicKey, k.enabled, k.notBefore, k.expiresAt],
      );
      if (keepIssued) {
        step('issued tokens');
        await client.query('INSERT INTO oingate.issued_tokens SELECT * FROM oingate_kept_issued_tokens');
      }
      step('revoked tokens');
      await client.query(
        `INSERT INTO oingate.revoked_tokens (oin, jti, expires_at, reason)
         SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
         ON CONFLICT (oin, jti) DO NOTHING`,
        [r.oin, r.jti, r.expiresAt, r.reason],
      );
      step('commit');
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
  return { tenants: doc.tenants.length };
}
