/**
 * Writing revocations (contract §10) for `oingate revoke`: one token by its
 * jti, everything a tenant was issued up to now, and pruning the rows whose
 * token has expired. Each runs in one transaction; the gates learn of it
 * through the change notifications of the tables it writes.
 */
import type pg from 'pg';
import { withClient } from './migrate.ts';

/** A revocation that cannot be made as asked; nothing was written. */
export class RevocationError extends Error {
  readonly code: 'ERR_UNKNOWN_JTI' | 'ERR_JTI_OTHER_TENANT' | 'ERR_UNKNOWN_TENANT' | 'ERR_EXPIRY_RECORDED';
  constructor(code: RevocationError['code'], message: string) {
    super(message);
    this.name = 'RevocationError';
    this.code = code;
  }
}

export interface RevokeRequest {
  readonly jti: string;
  /** Needed when the jti is not in the record (a token of the tenant's own identity provider). */
  readonly oin?: string;
  readonly reason?: string;
  /** For a token not in the record: when it expires, so the revocation can be pruned after. */
  readonly expiresAt?: Date;
}

export interface RevokeResult {
  readonly oin: string;
  readonly jti: string;
  readonly expiresAt: Date | null;
  /** False when the token was revoked already (nothing changed). */
  readonly revoked: boolean;
}

async function tenantExists(client: pg.Client, oin: string): Promise<boolean> {
  const found = await client.query('SELECT 1 FROM oingate.tenants WHERE oin = $1', [oin]);
  return found.rowCount === 1;
}

/** Revokes one token for its tenant; a recorded token's tenant and expiry come from the record. */
export async function revokeToken(connectionString: string, request: RevokeRequest): Promise<RevokeResult> {
  return withClient(connectionString, 'cannot revoke the token in the PostgreSQL store', async (client, step) => {
    await client.query('BEGIN');
    try {
      step('issued_tokens');
      const record = await client.query<{ oin: string; expires_at: Date }>('SELECT oin, expires_at FROM oingate.issued_tokens WHERE jti = $1', [
        request.jti,
      ]);
      const issued = record.rows[0];
      let oin: string;
      let expiresAt: Date | null;
      if (issued !== undefined) {
        if (request.oin !== undefined && request.oin !== issued.oin) {
          throw new RevocationError('ERR_JTI_OTHER_TENANT', `jti ${request.jti} was issued to tenant ${issued.oin}, not ${request.oin}`);
        }
        if (request.expiresAt !== undefined) {
          throw new RevocationError('ERR_EXPIRY_RECORDED', `jti ${request.jti} is recorded: its expiry (${issued.expires_at.toISOString()}) comes from the record`);
        }
        oin = issued.oin;
        expiresAt = issued.expires_at;
      } else {
        if (request.oin === undefined) {
          throw new RevocationError(
            'ERR_UNKNOWN_JTI',
            `jti ${request.jti} is not in the record of issued tokens; for a token that oingate did not issue, name its tenant with --oin`,
          );
        }
        if (!(await tenantExists(client, request.oin))) throw new RevocationError('ERR_UNKNOWN_TENANT', `no tenant with OIN ${request.oin} in the store`);
        oin = request.oin;
        expiresAt = request.expiresAt ?? null;
      }
      step('revoked_tokens');
      const inserted = await client.query(
        `INSERT INTO oingate.revoked_tokens (oin, jti, expires_at, reason) VALUES ($1, $2, $3, $4) ON CONFLICT (oin, jti) DO NOTHING`,
        [oin, request.jti, expiresAt, request.reason ?? null],
      );
      await client.query('COMMIT');
      return { oin, jti: request.jti, expiresAt, revoked: inserted.rowCount === 1 };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  });
}

/**
 * Revokes every token the tenant was issued up to now: `tokens_issued_after`
 * becomes the current second (never earlier than it was). Whole seconds,
 * since `iat` is: a token issued in this second is revoked too.
 */
export async function revokeAllOf(connectionString: string, oin: string): Promise<Date> {
  return withClient(connectionString, 'cannot revoke the tenant\'s tokens in the PostgreSQL store', async (client) => {
    const updated = await client.query<{ cutoff: Date }>(
      `UPDATE oingate.tenants SET tokens_issued_after = GREATEST(tokens_issued_after, date_trunc('second', now()))
        WHERE oin = $1 RETURNING tokens_issued_after AS cutoff`,
      [oin],
    );
    const row = updated.rows[0];
    if (row === undefined) throw new RevocationError('ERR_UNKNOWN_TENANT', `no tenant with OIN ${oin} in the store`);
    return row.cutoff;
  });
}

/**
 * Deletes the revocations whose token expired more than `toleranceSeconds`
 * ago (the gates have forgotten them: such a token is refused as expired).
 * Rows without an expiry are kept. Returns how many were deleted.
 */
export async function pruneRevocations(connectionString: string, toleranceSeconds: number): Promise<number> {
  return withClient(connectionString, 'cannot prune revocations in the PostgreSQL store', async (client) => {
    const deleted = await client.query(`DELETE FROM oingate.revoked_tokens WHERE expires_at < now() - make_interval(secs => $1)`, [
      toleranceSeconds,
    ]);
    return deleted.rowCount ?? 0;
  });
}
