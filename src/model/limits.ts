import type { ValidationIssue } from './errors.ts';

/**
 * The limits the README states for a whitelist. Over any of them the whole
 * whitelist is refused, naming the tenant, before the excess is parsed.
 * Within them, a whitelist of any shape is built in time linear in its size
 * (n log n for the sorts), in steps that never stall requests.
 */

/** Tenants in one whitelist (the contract asks for 100,000; ten times that is allowed). */
export const MAX_TENANTS = 1_000_000;

/** CIDR ranges of one tenant. */
export const MAX_CIDRS_PER_TENANT = 65_536;

/** Static keys of one tenant (a JWKS is bounded on its own). */
export const MAX_KEYS_PER_TENANT = 64;

/** Characters in a tenant's `issuer` or `audience`. */
export const MAX_ISSUER_AUDIENCE_LENGTH = 1024;

/** Revoked tokens in one whitelist, all tenants together (ten times the 100,000 the contract asks for). */
export const MAX_REVOKED_TOKENS = 1_000_000;

/** Characters in a revoked token's `jti` or `reason`. */
export const MAX_REVOCATION_TEXT_LENGTH = 1024;

/** The whole whitelist's tenants over MAX_TENANTS, worded the same wherever they are counted. */
export function tooManyTenants(count: number): ValidationIssue {
  return { path: 'tenants', message: `holds ${count} tenants; at most ${MAX_TENANTS} are allowed` };
}

/** The whole whitelist's revoked tokens over MAX_REVOKED_TOKENS, likewise. */
export function tooManyRevoked(path: string, count: number): ValidationIssue {
  return { path, message: `holds ${count} revoked tokens; at most ${MAX_REVOKED_TOKENS} are allowed` };
}
