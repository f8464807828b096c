import jwt from 'jsonwebtoken';
import { ALGORITHMS, type Algorithm } from '../model/algorithms.ts';
import { foldedCollisionDeep } from '../json/casefold.ts';
import { parseStrictJson } from '../json/strict-json.ts';
import type { VerifiedTokenCache } from './cache.ts';
import { isUsable, type KeySet, type TenantKey } from './key.ts';

/**
 * Per-request verification of a bearer JWT (JWS compact serialisation)
 * against the keys of one tenant. Pure and synchronous: no I/O, never throws
 * for any token input, and the algorithm always comes from the key, never
 * from the token header. The signature is verified by jsonwebtoken; the
 * rules it cannot express (strict JSON, case-folded names, `crit`, canonical
 * signatures, the size cap, the time and lifetime rules) are checked here,
 * beside it.
 */

export interface TokenPolicy {
  /** Leeway for exp, nbf and iat, in seconds (>= 0). */
  clockToleranceSeconds: number;
  /** Longest accepted lifetime (exp - iat, or exp - now without iat), in seconds. */
  maxLifetimeSeconds: number;
  /** When set, `iss` must be exactly this string. */
  issuer?: string;
  /** When set, `aud` must be this string or an array of strings holding it. */
  audience?: string;
  /** When true, a token without a string `jti` is refused (token_no_jti). */
  requireJti?: boolean;
}

/** Every failure reason, e.g. for metric labels. */
export const TOKEN_FAILURES = [
  'token_missing',
  'token_malformed',
  'token_unknown_kid',
  'token_key_inactive',
  'token_algorithm',
  'token_bad_signature',
  'token_no_exp',
  'token_expired',
  'token_not_yet_valid',
  'token_iat_future',
  'token_lifetime',
  'token_issuer',
  'token_audience',
  'token_claim_collision',
  'token_no_jti',
] as const;

export type TokenFailure = (typeof TOKEN_FAILURES)[number];

/**
 * Per-call replacements for the policy's issuer and audience (a tenant's
 * own): a field set here is checked instead of the policy's.
 */
export interface TokenExpectations {
  readonly issuer?: string;
  readonly audience?: string;
}

/** Most keys tried for a token without `kid`, so a tenant with many keys cannot make one token cost many verifications. */
export const MAX_KIDLESS_CANDIDATES = 8;

export type TokenResult =
  | { ok: true; claims: Readonly<Record<string, unknown>>; kid: string }
  | { ok: false; reason: TokenFailure };

/** Longest token accepted, in characters (the token is ASCII once checked). */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** Three non-empty base64url segments (no padding) separated by dots. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** `Bearer <token>`: scheme case-insensitive, exactly one space, one token. */
const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr] ([A-Za-z0-9_.-]+)$/;

/**
 * The token of an `Authorization: Bearer <token>` header, or undefined for
 * anything else (another scheme, no token, two tokens, extra whitespace).
 */
export function extractBearer(authorization: string | undefined): string | undefined {
  if (typeof authorization !== 'string') return undefined;
  const match = BEARER.exec(authorization);
  return match ? match[1] : undefined;
}

/**
 * jsonwebtoken's options for a key pinned to `alg`: the algorithm list is
 * the key's alone, so the token header never chooses it. Its own time checks
 * are off, since ours are stricter (a finite `exp` required, `iat` and the
 * lifetime bounded, a fractional clock) and the cache path must answer
 * alike without it; issuer and audience are ours for the same reason. Its
 * per-call key check is off too: keys.ts made the same checks once, at
 * load (key type, curve, RSA-PSS restrictions), and jsonwebtoken's would
 * refuse every token for an RSA-PSS key without restrictions, which JWS
 * allows. Built once, at load.
 */
type PinnedOptions = jwt.VerifyOptions & { readonly complete: true };

const JWT_OPTIONS = Object.fromEntries(
  ALGORITHMS.map((alg): [Algorithm, PinnedOptions] => [
    alg,
    Object.freeze({
      algorithms: Object.freeze([alg]) as Algorithm[],
      complete: true,
      ignoreExpiration: true,
      ignoreNotBefore: true,
      allowInvalidAsymmetricKeyTypes: true,
    }),
  ]),
) as Readonly<Record<Algorithm, PinnedOptions>>;

/**
 * Whether `key` (its KeyObject, built at load) verifies the token's
 * signature, through jsonwebtoken. It throws for every refusal (a wrong
 * signature, an ECDSA signature of the wrong length, a key that does not
 * fit): each is a signature this key does not verify. The payload reaches
 * it only once our strict parser has accepted it.
 */
function signatureValid(token: string, key: TenantKey): boolean {
  const options = Object.hasOwn(JWT_OPTIONS, key.alg) ? JWT_OPTIONS[key.alg] : undefined;
  if (options === undefined) return false;
  try {
    // jsonwebtoken read the header on its own; it must have used the key's alg.
    return jwt.verify(token, key.key, options).header.alg === key.alg;
  } catch {
    return false;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A base64url segment decoded and parsed as a JSON object, or undefined. */
function decodeObject(segment: string): Record<string, unknown> | undefined {
  // A length of 1 mod 4 is never valid base64.
  if (segment.length % 4 === 1) return undefined;
  let value: unknown;
  try {
    // Strict like the body: a duplicate claim ("oin" twice) could be read one
    // way here and another way by the upstream, which receives the same token.
    value = parseStrictJson(utf8.decode(Buffer.from(segment, 'base64url')), { maxDepth: 16 });
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return value as Record<string, unknown>;
}

/** An own property (never one inherited from Object.prototype). */
function own(object: Readonly<Record<string, unknown>>, name: string): unknown {
  return Object.hasOwn(object, name) ? object[name] : undefined;
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function fail(reason: TokenFailure): TokenResult {
  return { ok: false, reason };
}

/**
 * Verifies `token` against one tenant's keys at `nowMs` (epoch ms). `expect`
 * carries the tenant's own issuer and audience: a field set there is checked
 * instead of the policy's, on the cached path as on the full one.
 *
 * Throws (TypeError) only for a non-finite `nowMs` or an invalid policy:
 * those are programming errors, and failing closed beats accepting tokens
 * against a NaN clock.
 */
export function verifyTenantToken(
  token: string | undefined,
  keys: KeySet,
  policy: TokenPolicy,
  nowMs: number,
  cache?: VerifiedTokenCache,
  expect?: TokenExpectations,
): TokenResult {
  if (!Number.isFinite(nowMs)) throw new TypeError('verifyTenantToken: nowMs must be a finite number');
  const tol = policy.clockToleranceSeconds;
  const maxLifetime = policy.maxLifetimeSeconds;
  if (!Number.isFinite(tol) || tol < 0) {
    throw new TypeError('verifyTenantToken: clockToleranceSeconds must be a finite number >= 0');
  }
  if (!Number.isFinite(maxLifetime) || maxLifetime <= 0) {
    throw new TypeError('verifyTenantToken: maxLifetimeSeconds must be a finite number > 0');
  }
  const issuer = expect?.issuer ?? policy.issuer;
  const audience = expect?.audience ?? policy.audience;

  if (token === undefined || token === null || token === '') return fail('token_missing');
  if (typeof token !== 'string') return fail('token_malformed');
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) return fail('token_malformed');

  if (cache !== undefined) {
    const hit = cache.get(token, keys);
    // A key that left its window falls through to the full path, so a hit
    // never answers differently than verification would.
    if (hit !== undefined && isUsable(hit.key, nowMs)) {
      const failure = claimsFailure(hit.claims, policy, issuer, audience, nowMs);
      return failure === undefined ? { ok: true, claims: hit.claims, kid: hit.key.kid } : fail(failure);
    }
  }

  const firstDot = token.indexOf('.');
  const lastDot = token.lastIndexOf('.');
  const headerSegment = token.slice(0, firstDot);
  const payloadSegment = token.slice(firstDot + 1, lastDot);
  const signatureSegment = token.slice(lastDot + 1);

  const header = decodeObject(headerSegment);
  if (header === undefined) return fail('token_malformed');
  const alg = own(header, 'alg');
  if (typeof alg !== 'string') return fail('token_malformed');
  const kid = own(header, 'kid');
  if (kid !== undefined && typeof kid !== 'string') return fail('token_malformed');
  // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we
  // understand none (notably not RFC 7797 `b64: false`).
  if (Object.hasOwn(header, 'crit')) return fail('token_malformed');
  // Case-insensitive readers (Go, .NET) could take "KID" or "ALG" for ours.
  if (foldedCollisionDeep(header) !== undefined) return fail('token_claim_collision');

  // The signature must be canonical base64url, so that one signature has
  // exactly one spelling (unused trailing bits must be zero).
  const signature = Buffer.from(signatureSegment, 'base64url');
  if (signature.toString('base64url') !== signatureSegment) return fail('token_malformed');

  const candidates = candidateKeys(keys, kid, alg, nowMs);
  if (typeof candidates === 'string') return fail(candidates);

  // The payload is read before the signature is checked: jsonwebtoken parses
  // it anyway (leniently, so it must not see what we would refuse), and a
  // bounded 16 KiB is all an unsigned token can make us parse.
  const claims = decodeObject(payloadSegment);
  if (claims === undefined) return fail('token_malformed');
  // The upstream gets the same token: a Go upstream reading "OIN" where we
  // read "oin" would act for another tenant than the one we checked.
  if (foldedCollisionDeep(claims) !== undefined) return fail('token_claim_collision');

  let verifiedBy: TenantKey | undefined;
  for (const key of candidates) {
    if (signatureValid(token, key)) {
      verifiedBy = key;
      break;
    }
  }
  if (verifiedBy === undefined) return fail('token_bad_signature');

  const failure = claimsFailure(claims, policy, issuer, audience, nowMs);
  if (failure !== undefined) return fail(failure);
  cache?.set(token, keys, verifiedBy, claims);
  return { ok: true, claims, kid: verifiedBy.kid };
}

/**
 * The keys that may have signed the token: the one its kid names, or without
 * a kid the first usable keys of its algorithm (at most
 * MAX_KIDLESS_CANDIDATES); or the reason there are none.
 */
function candidateKeys(keys: KeySet, kid: string | undefined, alg: string, nowMs: number): readonly TenantKey[] | TokenFailure {
  if (kid !== undefined) {
    const key = keys.byKid.get(kid);
    if (key === undefined) return 'token_unknown_kid';
    if (!isUsable(key, nowMs)) return 'token_key_inactive';
    if (alg !== key.alg) return 'token_algorithm';
    return [key];
  }
  const found: TenantKey[] = [];
  for (const key of keys.list) {
    if (key.alg !== alg || !isUsable(key, nowMs)) continue;
    found.push(key);
    if (found.length === MAX_KIDLESS_CANDIDATES) break;
  }
  return found.length === 0 ? 'token_unknown_kid' : found;
}

/** The time, issuer, audience and jti checks of a verified token's claims. */
function claimsFailure(
  claims: Readonly<Record<string, unknown>>,
  policy: TokenPolicy,
  issuer: string | undefined,
  audience: string | undefined,
  nowMs: number,
): TokenFailure | undefined {
  const tol = policy.clockToleranceSeconds;
  const now = nowMs / 1000;
  const exp = own(claims, 'exp');
  if (!isFiniteNumber(exp)) return 'token_no_exp';
  if (now >= exp + tol) return 'token_expired';

  const nbf = own(claims, 'nbf');
  if (nbf !== undefined) {
    if (!isFiniteNumber(nbf)) return 'token_malformed';
    if (now + tol < nbf) return 'token_not_yet_valid';
  }

  const iat = own(claims, 'iat');
  if (iat !== undefined) {
    if (!isFiniteNumber(iat)) return 'token_malformed';
    if (iat > now + tol) return 'token_iat_future';
  }

  const lifetime = iat !== undefined ? exp - (iat as number) : exp - now;
  if (lifetime > policy.maxLifetimeSeconds) return 'token_lifetime';

  if (issuer !== undefined && own(claims, 'iss') !== issuer) return 'token_issuer';
  if (audience !== undefined && !audienceMatches(own(claims, 'aud'), audience)) return 'token_audience';
  // Checked here, not at signature time, so that a cached token answers alike
  // when the setting differs between the policies that share one cache.
  if (policy.requireJti === true && typeof own(claims, 'jti') !== 'string') return 'token_no_jti';
  return undefined;
}

/** `aud` is the audience itself, or an array of strings that holds it. */
function audienceMatches(aud: unknown, audience: string): boolean {
  if (typeof aud === 'string') return aud === audience;
  if (!Array.isArray(aud)) return false;
  let found = false;
  for (const entry of aud) {
    if (typeof entry !== 'string') return false;
    if (entry === audience) found = true;
  }
  return found;
}
