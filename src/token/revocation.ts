/**
 * Whether a verified token is revoked for the tenant it was verified for
 * (contract §10): its `jti` is in the tenant's revoked set, or the tenant
 * revoked everything issued up to a moment and the token's `iat` is not
 * after it (a token without `iat` cannot show it is newer). Asked on every
 * request, cache hits included, against the tenant enforced now: the token
 * cache can never let a revoked token through.
 */
import type { Tenant } from '../model/snapshot.ts';

export function isRevoked(tenant: Tenant, claims: Readonly<Record<string, unknown>>): boolean {
  const after = tenant.tokensIssuedAfter;
  if (after !== undefined) {
    const iat = Object.hasOwn(claims, 'iat') ? claims['iat'] : undefined;
    if (typeof iat !== 'number' || iat * 1000 <= after) return true;
  }
  const revoked = tenant.revokedTokens;
  if (revoked === undefined) return false;
  const jti = Object.hasOwn(claims, 'jti') ? claims['jti'] : undefined;
  return typeof jti === 'string' && revoked.has(jti);
}
