/**
 * Revoked tokens (contract §10) as the whitelist carries them: the file's
 * top-level `revokedTokens`, the rows of `oingate.revoked_tokens`. Entries
 * are validated here and grouped by tenant; a tenant then holds its own as a
 * set of jtis, so that a revocation is one change to one tenant and the
 * same jti under another tenant is untouched.
 */
import { hash } from 'node:crypto';
import { describeValue, type ValidationIssue } from './errors.ts';
import { MAX_REVOKED_TOKENS, MAX_REVOCATION_TEXT_LENGTH, tooManyRevoked } from './limits.ts';
import { PackedTexts } from './packed-tenants.ts';
import type { Work } from './pacing.ts';
import { isRecord, readText, readTime } from './values.ts';

/** One revoked token of one tenant, validated. */
export interface Revocation {
  readonly jti: string;
  /** When the token expires (ms since the epoch); undefined: not known, never forgotten. */
  readonly expiresAt: number | undefined;
  readonly reason: string | undefined;
}

/** Revocations by OIN, each with the place of its first entry (for an issue about the OIN). */
export interface RevocationsByTenant {
  readonly byOin: Map<string, Revocation[]>;
  readonly firstPlace: Map<string, string>;
}

const FIELDS = new Set(['jti', 'oin', 'expiresAt', 'reason']);

export const NO_REVOCATIONS: RevocationsByTenant = Object.freeze({ byOin: new Map(), firstPlace: new Map() });

/**
 * Validates a list of revocation entries (`where` is its place, e.g.
 * `revokedTokens`) and groups them by OIN. Every problem becomes an issue;
 * whether each OIN names a tenant is for the caller to check, once the
 * tenants are known. A second entry for the same OIN and jti is refused.
 */
export function* readRevocations(raw: unknown, where: string, oinPattern: RegExp, issues: ValidationIssue[]): Work<RevocationsByTenant> {
  if (raw === undefined) return NO_REVOCATIONS;
  // An array, or its elements' texts handed over by the thread that parsed the file.
  const packed = raw instanceof PackedTexts ? raw : undefined;
  if (!packed && !Array.isArray(raw)) {
    issues.push({ path: where, message: 'must be an array of {"jti", "oin"} entries' });
    return NO_REVOCATIONS;
  }
  const length = packed ? packed.length : (raw as unknown[]).length;
  if (length > MAX_REVOKED_TOKENS) {
    // Refused before any is read: the excess costs nothing.
    issues.push(tooManyRevoked(where, length));
    return NO_REVOCATIONS;
  }
  const byOin = new Map<string, Revocation[]>();
  const firstPlace = new Map<string, string>();
  // Tenant and jti, for the entry given twice.
  const seen = new Set<string>();
  for (let index = 0; index < length; index++) {
    if ((index & 1023) === 1023) yield;
    const path = `${where}[${index}]`;
    const entry: unknown = packed ? packed.value(index) : (raw as unknown[])[index];
    if (!isRecord(entry)) {
      issues.push({ path, message: 'must be an object' });
      continue;
    }
    const before = issues.length;
    for (const key of Object.keys(entry)) {
      if (!FIELDS.has(key)) issues.push({ path, message: `unknown field "${key}"` });
    }
    const jti = readText(entry, 'jti', path, issues, MAX_REVOCATION_TEXT_LENGTH, 'required');
    const oin = entry['oin'];
    if (typeof oin !== 'string') issues.push({ path: `${path}.oin`, message: 'must be a string' });
    else if (!oinPattern.test(oin)) issues.push({ path: `${path}.oin`, message: `${describeValue(oin)} does not match the OIN pattern ${oinPattern.source}` });
    const expiresAt = readTime(entry, 'expiresAt', path, issues);
    const reason = readText(entry, 'reason', path, issues, MAX_REVOCATION_TEXT_LENGTH, 'missing-or-null');
    if (issues.length > before || jti === undefined || typeof oin !== 'string') continue;
    const key = `${oin}\u0000${jti}`;
    if (seen.has(key)) {
      issues.push({ path: `${path}.jti`, message: `${describeValue(jti)} is revoked twice for tenant ${oin}` });
      continue;
    }
    seen.add(key);
    let list = byOin.get(oin);
    if (list === undefined) {
      list = [];
      byOin.set(oin, list);
      firstPlace.set(oin, `${path}.oin`);
    }
    list.push({ jti, expiresAt, reason });
  }
  return { byOin, firstPlace };
}

/**
 * The digest of one tenant's revocations as written, order-free ('' when
 * there are none), for the tenant's fingerprint and for telling whether they
 * changed. Times are in ms, so an ISO text in any zone and a database
 * timestamp of the same instant digest alike.
 */
export function revocationsDigest(list: readonly Revocation[] | undefined): string {
  if (list === undefined || list.length === 0) return '';
  const lines = list.map((r) => `${r.jti}\u0000${r.expiresAt ?? ''}\u0000${r.reason ?? ''}`).sort();
  return hash('sha256', lines.join('\u0001'), 'base64') as string;
}

/**
 * The jtis a tenant enforces: those whose token may still be valid. A
 * revocation whose token expired longer ago than the clock tolerance is
 * forgotten (the token is refused as expired anyway); undefined when none is
 * left, so a tenant without revocations costs nothing more.
 */
export function enforcedJtis(list: readonly Revocation[] | undefined, nowMs: number, toleranceMs: number): ReadonlySet<string> | undefined {
  if (list === undefined) return undefined;
  let jtis: Set<string> | undefined;
  for (const revocation of list) {
    if (revocation.expiresAt !== undefined && revocation.expiresAt + toleranceMs < nowMs) continue;
    (jtis ??= new Set()).add(revocation.jti);
  }
  return jtis;
}
