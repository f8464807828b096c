/**
 * The record of tokens `oingate token` issued (`oingate.issued_tokens`,
 * contract §10): written when a token is minted, listed by `oingate tokens`.
 * Never the token itself, only what identifies it.
 */
import { withClient } from './migrate.ts';

export interface IssuedToken {
  readonly jti: string;
  readonly oin: string;
  readonly kid: string;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  readonly note: string | null;
}

/** A listed token and whether `oingate.revoked_tokens` holds it. */
export interface IssuedTokenListing extends IssuedToken {
  readonly revoked: boolean;
}

/** Records one issued token; fails (nothing printed by the caller) when the row cannot be written. */
export async function recordIssuedToken(connectionString: string, token: IssuedToken): Promise<void> {
  await withClient(connectionString, 'cannot record the token in the PostgreSQL store', async (client) => {
    await client.query(
      `INSERT INTO oingate.issued_tokens (jti, oin, kid, issued_at, expires_at, note) VALUES ($1, $2, $3, $4, $5, $6)`,
      [token.jti, token.oin, token.kid, token.issuedAt, token.expiresAt, token.note],
    );
  });
}

/** A row of `oingate.issued_tokens` as the driver returns it. */
export interface IssuedTokenRow {
  jti: string;
  oin: string;
  kid: string;
  issued_at: Date;
  expires_at: Date;
  note: string | null;
}

type Row = IssuedTokenRow & { revoked: boolean };

/**
 * The recorded tokens, oldest first (one tenant's with `oin`). Whether each is
 * revoked is read from `oingate.revoked_tokens` when that table exists; a
 * schema without it can revoke nothing, so every token then reads as not
 * revoked.
 */
export async function listIssuedTokens(connectionString: string, oin?: string): Promise<IssuedTokenListing[]> {
  return withClient(connectionString, 'cannot list the tokens in the PostgreSQL store', async (client, step) => {
    step('issued_tokens');
    // Two statements: a query naming a missing table fails at parse time.
    const found = await client.query<{ exists: boolean }>(`SELECT to_regclass('oingate.revoked_tokens') IS NOT NULL AS exists`);
    // Revoked one by one, or with everything its tenant was issued up to a moment (--all).
    const revoked =
      found.rows[0]?.exists === true
        ? `(EXISTS (SELECT 1 FROM oingate.revoked_tokens r WHERE r.oin = t.oin AND r.jti = t.jti)
            OR EXISTS (SELECT 1 FROM oingate.tenants n WHERE n.oin = t.oin AND t.issued_at <= n.tokens_issued_after))`
        : 'false';
    const result = await client.query<Row>(
      `SELECT t.jti, t.oin, t.kid, t.issued_at, t.expires_at, t.note, ${revoked} AS revoked
         FROM oingate.issued_tokens t
        WHERE $1::text IS NULL OR t.oin = $1
        ORDER BY t.issued_at, t.jti`,
      [oin ?? null],
    );
    return result.rows.map((row) => ({
      jti: row.jti,
      oin: row.oin,
      kid: row.kid,
      issuedAt: row.issued_at,
      expiresAt: row.expires_at,
      note: row.note,
      revoked: row.revoked,
    }));
  });
}
