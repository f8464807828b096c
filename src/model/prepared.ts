/**
 * A tenant validated but not yet built, and the text it crosses threads as.
 * The thread that parses a whitelist file has a core of its own to spare:
 * it validates each tenant with the build's own code and hands over, beside
 * the tenant's text, the result (its issues, or its fields, its ranges
 * parsed and the digest its version sums). The building thread then only
 * makes what cannot cross: key objects and range sets. Pure: no I/O.
 */
import type { KeyObject } from 'node:crypto';
import { cidrOfParts, type Cidr } from '../ip/cidr.ts';
import type { RateLimit } from '../limit/rate.ts';
import { isAlgorithm, type Algorithm } from './algorithms.ts';
import type { ValidationIssue } from './errors.ts';
import { AUTHENTICATIONS, type Authentication } from './authentication.ts';

/** A key validated: its key object, or (prepared on another thread) the material to make it from. */
export interface PreparedKey {
  readonly kid: string;
  readonly alg: Algorithm;
  readonly enabled: boolean;
  readonly notBefore: number | undefined;
  readonly expiresAt: number | undefined;
  /** The secret or PEM as written: what the key object is made from, and what the version digests. */
  readonly material: string;
  readonly key: KeyObject | undefined;
}

/** A tenant validated: every field as it will be enforced, its ranges parsed. */
export interface PreparedTenant {
  readonly oin: string;
  readonly name: string;
  readonly enabled: boolean;
  readonly cidrs: readonly Cidr[];
  readonly keys: readonly PreparedKey[];
  readonly jwksUri: string | undefined;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly rateLimit: RateLimit | undefined;
  readonly tokensIssuedAfter: number | undefined;
  readonly authentication: Authentication;
}

// The first element tells the two texts apart.
const TENANT = 0;
const ISSUES = 1;

/**
 * A prepared tenant and its fingerprint as one JSON array (null for
 * undefined): ranges as their canonical text, family, prefix and network
 * words; keys without their key objects.
 */
export function encodePrepared(tenant: PreparedTenant, fingerprint: string): string {
  const cidrs: (string | number)[] = [];
  for (const c of tenant.cidrs) cidrs.push(c.text, c.family, c.prefix, c.network.w0, c.network.w1, c.network.w2, c.network.w3);
  const keys: (string | number | boolean | null)[] = [];
  for (const k of tenant.keys) keys.push(k.kid, k.alg, k.enabled, k.notBefore ?? null, k.expiresAt ?? null, k.material);
  const limit = tenant.rateLimit;
  return JSON.stringify([
    TENANT,
    fingerprint,
    tenant.oin,
    tenant.name,
    tenant.enabled,
    cidrs,
    keys,
    tenant.jwksUri ?? null,
    tenant.issuer ?? null,
    tenant.audience ?? null,
    limit === undefined ? null : [limit.perSecond, limit.burst],
    tenant.tokensIssuedAfter ?? null,
    AUTHENTICATIONS.indexOf(tenant.authentication),
  ]);
}

/** A tenant's issues, for a tenant that is refused. */
export function encodeIssues(issues: readonly ValidationIssue[]): string {
  const flat: string[] = [];
  for (const issue of issues) flat.push(issue.path, issue.message);
  return JSON.stringify([ISSUES, flat]);
}

/** The error of a text that no encoding here gave: only a fault makes one, and the build fails on it. */
function malformed(what: string): never {
  throw new TypeError(`malformed prepared tenant: ${what}`);
}

const optionalString = (value: unknown, what: string): string | undefined =>
  value === null ? undefined : typeof value === 'string' ? value : malformed(what);
const optionalNumber = (value: unknown, what: string): number | undefined =>
  value === null ? undefined : typeof value === 'number' ? value : malformed(what);
/** A range's family, prefix or network word: an unsigned 32-bit integer (cidrOfParts checks the rest). */
const word = (value: unknown): number => (typeof value === 'number' && value >>> 0 === value ? value : malformed('cidr part'));

/**
 * Reads what {@link encodePrepared} or {@link encodeIssues} wrote. Checked
 * field by field all the same: whatever does not fit throws, so a fault can
 * fail a build but never make it enforce something other than what was validated.
 */
export function decodePrepared(text: string): { readonly tenant: PreparedTenant; readonly fingerprint: string } | { readonly issues: ValidationIssue[] } {
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value)) return malformed('not an array');
  if (value[0] === ISSUES) {
    const flat: unknown = value[1];
    if (!Array.isArray(flat) || flat.length % 2 !== 0 || flat.length === 0) return malformed('issues');
    const issues: ValidationIssue[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const path: unknown = flat[i];
      const message: unknown = flat[i + 1];
      if (typeof path !== 'string' || typeof message !== 'string') return malformed('issue');
      issues.push({ path, message });
    }
    return { issues };
  }
  if (value[0] !== TENANT || value.length !== 13) return malformed('shape');
  const [, fingerprint, oin, name, enabled, cidrParts, keyParts, jwksUri, issuer, audience, limit, tokensIssuedAfter, authentication] = value as unknown[];
  if (typeof fingerprint !== 'string' || typeof oin !== 'string' || typeof name !== 'string' || typeof enabled !== 'boolean') return malformed('fields');
  if (!Array.isArray(cidrParts) || cidrParts.length % 7 !== 0) return malformed('cidrs');
  const cidrs: Cidr[] = [];
  // Indexed, not sliced: this runs for every range of a 100k-tenant start.
  for (let i = 0; i < cidrParts.length; i += 7) {
    const text: unknown = cidrParts[i];
    if (typeof text !== 'string') return malformed('cidr');
    cidrs.push(cidrOfParts(text, word(cidrParts[i + 1]), word(cidrParts[i + 2]), word(cidrParts[i + 3]), word(cidrParts[i + 4]), word(cidrParts[i + 5]), word(cidrParts[i + 6])));
  }
  if (!Array.isArray(keyParts) || keyParts.length % 6 !== 0) return malformed('keys');
  const keys: PreparedKey[] = [];
  for (let i = 0; i < keyParts.length; i += 6) {
    const kid: unknown = keyParts[i];
    const alg: unknown = keyParts[i + 1];
    const keyEnabled: unknown = keyParts[i + 2];
    const material: unknown = keyParts[i + 5];
    if (typeof kid !== 'string' || !isAlgorithm(alg) || typeof keyEnabled !== 'boolean' || typeof material !== 'string') return malformed('key');
    keys.push({
      kid,
      alg,
      enabled: keyEnabled,
      notBefore: optionalNumber(keyParts[i + 3], 'notBefore'),
      expiresAt: optionalNumber(keyParts[i + 4], 'expiresAt'),
      material,
      key: undefined,
    });
  }
  let rateLimit: RateLimit | undefined;
  if (limit !== null) {
    if (!Array.isArray(limit) || limit.length !== 2 || typeof limit[0] !== 'number' || typeof limit[1] !== 'number') return malformed('rateLimit');
    rateLimit = { perSecond: limit[0], burst: limit[1] };
  }
  const mode = AUTHENTICATIONS[authentication as number];
  if (mode === undefined) return malformed('authentication');
  return {
    fingerprint,
    tenant: {
      oin,
      name,
      enabled,
      cidrs,
      keys,
      jwksUri: optionalString(jwksUri, 'jwksUri'),
      issuer: optionalString(issuer, 'issuer'),
      audience: optionalString(audience, 'audience'),
      rateLimit,
      tokensIssuedAfter: optionalNumber(tokensIssuedAfter, 'tokensIssuedAfter'),
      authentication: mode,
    },
  };
}
