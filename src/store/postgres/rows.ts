/**
 * The whole store, or some tenants of it, as the file's document: the
 * queries (the server renders what other code's type parsers might read
 * otherwise) and the assembly of their rows. Run inside a transaction the
 * caller opened (the source's REPEATABLE READ READ ONLY one).
 */
import type pg from 'pg';
import type { KeyDocument, RevokedTokenDocument, TenantDocument, WhitelistDocument } from '../../model/document.ts';

/** A tenant as assembled from its row: the file's fields plus the per-tenant issuer and audience. */
type TenantRowDocument = TenantDocument & { cidrs: string[]; keys: KeyDocument[]; issuer?: string; audience?: string; authentication?: string };

interface TenantRow {
  oin: string;
  name: string;
  enabled: boolean;
  jwks_uri: string | null;
  issuer: string | null;
  audience: string | null;
  rate_limit_per_second: number | null;
  rate_limit_burst: number | null;
  authentication: string;
  tokens_issued_after: string | null;
}
interface CidrRow {
  oin: string;
  cidr: string;
}
interface RevokedRow {
  oin: string;
  jti: string;
  expires_at: string | null;
  reason: string | null;
}
interface KeyRow {
  oin: string;
  kid: string;
  alg: string;
  secret: string | null;
  public_key: string | null;
  enabled: boolean;
  not_before: string | null;
  expires_at: string | null;
}

// Timestamps are rendered by the server (not pg's type parsers, which other
// code may have replaced) in the form Date#toISOString uses. Infinite values
// come out as 'infinity'/'-infinity' and are refused by validation.
const isoTimestamp = (col: string) =>
  `CASE WHEN isfinite(${col}) THEN to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') ELSE ${col}::text END`;

const TENANT_COLUMNS = `oin, name, enabled, jwks_uri, issuer, audience, rate_limit_per_second, rate_limit_burst, authentication,
  ${isoTimestamp('tokens_issued_after')} AS tokens_issued_after`;
const SELECT_TENANTS = `SELECT ${TENANT_COLUMNS} FROM oingate.tenants ORDER BY oin COLLATE "C"`;
const SELECT_CIDRS = `SELECT oin, cidr::text AS cidr FROM oingate.tenant_cidrs ORDER BY oin COLLATE "C", cidr`;
const SELECT_KEYS = `SELECT oin, kid, alg, secret, public_key, enabled,
  ${isoTimestamp('not_before')} AS not_before, ${isoTimestamp('expires_at')} AS expires_at
  FROM oingate.tenant_keys ORDER BY oin COLLATE "C", kid COLLATE "C"`;

/**
 * The columns as the file's `rateLimit`. A burst without a rate (a row
 * written before the constraint, or with it dropped) is passed on as it is,
 * so validation refuses it instead of silently dropping the limit.
 */
function rateLimitOf(t: TenantRow): TenantDocument['rateLimit'] {
  if (t.rate_limit_per_second === null && t.rate_limit_burst === null) return undefined;
  const limit: NonNullable<TenantDocument['rateLimit']> = {};
  if (t.rate_limit_per_second !== null) limit.perSecond = t.rate_limit_per_second;
  if (t.rate_limit_burst !== null) limit.burst = t.rate_limit_burst;
  return limit;
}
// The same columns for the named tenants only (one index range scan each).
const SELECT_SOME_TENANTS = `SELECT ${TENANT_COLUMNS} FROM oingate.tenants
  WHERE oin = ANY($1::text[]) ORDER BY oin COLLATE "C"`;
const SELECT_SOME_CIDRS = `SELECT oin, cidr::text AS cidr FROM oingate.tenant_cidrs
  WHERE oin = ANY($1::text[]) ORDER BY oin COLLATE "C", cidr`;
const SELECT_SOME_KEYS = `SELECT oin, kid, alg, secret, public_key, enabled,
  ${isoTimestamp('not_before')} AS not_before, ${isoTimestamp('expires_at')} AS expires_at
  FROM oingate.tenant_keys WHERE oin = ANY($1::text[]) ORDER BY oin COLLATE "C", kid COLLATE "C"`;
// No join with the tenants here: the rows of tenants that do not exist are
// dropped by assemble(), which knows the tenants of the same snapshot. A
// semi-join made the planner scan all 100k revocations for one tenant's.
const REVOKED_COLUMNS = `oin, jti, ${isoTimestamp('expires_at')} AS expires_at, reason FROM oingate.revoked_tokens`;
const SELECT_REVOKED = `SELECT ${REVOKED_COLUMNS} ORDER BY oin COLLATE "C", jti COLLATE "C"`;
const SELECT_SOME_REVOKED = `SELECT ${REVOKED_COLUMNS} WHERE oin = ANY($1::text[]) ORDER BY oin COLLATE "C", jti COLLATE "C"`;

/** The rows as the file's `revokedTokens` entries. */
function revokedEntries(rows: readonly RevokedRow[]): RevokedTokenDocument[] {
  return rows.map((r) => {
    const entry: RevokedTokenDocument = { jti: r.jti, oin: r.oin };
    if (r.expires_at !== null) entry.expiresAt = r.expires_at;
    if (r.reason !== null) entry.reason = r.reason;
    return entry;
  });
}

function assemble(tenants: TenantRow[], cidrs: CidrRow[], keys: KeyRow[], revoked: RevokedRow[]): WhitelistDocument {
  const byOin = new Map<string, TenantRowDocument>();
  const out: TenantDocument[] = [];
  for (const t of tenants) {
    const doc: TenantRowDocument = {
      oin: t.oin,
      name: t.name,
      enabled: t.enabled,
      cidrs: [],
      keys: [],
    };
    if (t.jwks_uri !== null) doc.jwksUri = t.jwks_uri;
    if (t.issuer !== null) doc.issuer = t.issuer;
    if (t.audience !== null) doc.audience = t.audience;
    const rateLimit = rateLimitOf(t);
    if (rateLimit !== undefined) doc.rateLimit = rateLimit;
    if (t.authentication !== 'token') doc.authentication = t.authentication;
    if (t.tokens_issued_after !== null) doc.tokensIssuedAfter = t.tokens_issued_after;
    byOin.set(t.oin, doc);
    out.push(doc);
  }
  // Within one snapshot the foreign keys guarantee every row has its tenant.
  for (const c of cidrs) byOin.get(c.oin)?.cidrs.push(c.cidr);
  for (const k of keys) {
    const key: KeyDocument = { kid: k.kid, alg: k.alg };
    if (k.secret !== null) key.secret = k.secret;
    if (k.public_key !== null) key.publicKey = k.public_key;
    key.enabled = k.enabled;
    if (k.not_before !== null) key.notBefore = k.not_before;
    if (k.expires_at !== null) key.expiresAt = k.expires_at;
    byOin.get(k.oin)?.keys.push(key);
  }
  // A revocation whose tenant is gone has no effect (and must not refuse the
  // whitelist) until the tenant is back.
  const live = revoked.filter((r) => byOin.has(r.oin));
  return live.length === 0 ? { tenants: out } : { tenants: out, revokedTokens: revokedEntries(live) };
}

/** Every tenant, with all its rows, and the revoked tokens of tenants that exist. */
export async function readAll(client: pg.ClientBase): Promise<WhitelistDocument> {
  const tenants = await client.query<TenantRow>(SELECT_TENANTS);
  const cidrs = await client.query<CidrRow>(SELECT_CIDRS);
  const keys = await client.query<KeyRow>(SELECT_KEYS);
  const revoked = await client.query<RevokedRow>(SELECT_REVOKED);
  return assemble(tenants.rows, cidrs.rows, keys.rows, revoked.rows);
}

/** The named tenants, with all their rows and revoked tokens. */
export async function readSome(client: pg.ClientBase, oins: readonly string[]): Promise<WhitelistDocument> {
  const list = [...oins];
  const tenants = await client.query<TenantRow>(SELECT_SOME_TENANTS, [list]);
  const cidrs = await client.query<CidrRow>(SELECT_SOME_CIDRS, [list]);
  const keys = await client.query<KeyRow>(SELECT_SOME_KEYS, [list]);
  const revoked = await client.query<RevokedRow>(SELECT_SOME_REVOKED, [list]);
  return assemble(tenants.rows, cidrs.rows, keys.rows, revoked.rows);
}
