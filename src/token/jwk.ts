import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { parseStrictJson, StrictJsonError } from '../json/strict-json.ts';
import type { Algorithm } from '../model/algorithms.ts';
import { MAX_KID_LENGTH, type TenantKey } from './key.ts';
import { checkPublicKey, KeyMaterialError } from './keys.ts';

/**
 * Verification keys from a JSON Web Key Set (RFC 7517), as an identity
 * provider publishes them. Runs once per fetch, never per request. Only keys
 * that pin their own `alg` are taken: the token header never chooses it.
 * Keys this gate cannot or must not use are skipped, not fatal, as RFC 7517
 * §5 asks; a set that is ambiguous or malformed as a whole is refused.
 */

/** The algorithms a JWK may pin. HS* is absent: a shared secret has no place in a published set. */
const JWK_ALGORITHMS: ReadonlySet<string> = new Set([
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
]);

/** The JOSE curve name each ECDSA algorithm requires. */
const JWK_CURVES: Readonly<Record<string, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

/** Members that only a private (or symmetric) JWK carries. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** Longest kid accepted, as for whitelist keys. */
/** The same limit as for a whitelist's kids. */
export const MAX_JWK_KID_LENGTH = MAX_KID_LENGTH;

/** Most keys one set may list (skipped ones included). */
export const MAX_JWKS_KEYS = 100;

/** Deepest nesting a JWK Set plausibly needs (`x5c` arrays sit at depth 4). */
const MAX_JWKS_DEPTH = 16;

export type JwkSkipReason =
  | 'not_object'
  | 'no_kid'
  | 'no_alg'
  | 'alg_unsupported'
  | 'use_not_sig'
  | 'key_ops_no_verify'
  | 'kty_unsupported'
  | 'kty_mismatch'
  | 'curve_mismatch'
  | 'private_key'
  | 'bad_key';

export type JwkResult =
  | { readonly ok: true; readonly key: TenantKey }
  | { readonly ok: false; readonly reason: JwkSkipReason; readonly kid: string | undefined; readonly detail: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function own(object: Record<string, unknown>, name: string): unknown {
  return Object.prototype.hasOwnProperty.call(object, name) ? object[name] : undefined;
}

function skip(reason: JwkSkipReason, kid: string | undefined, detail: string): JwkResult {
  return { ok: false, reason, kid, detail };
}

/**
 * One JWK as a verification key, or the reason it is skipped. The KeyObject
 * is built from the public members only (kty, n, e / kty, crv, x, y), and a
 * JWK that carries private members is skipped outright: whoever published it
 * has leaked the private key.
 */
export function readJwk(jwk: unknown): JwkResult {
  if (!isRecord(jwk)) return skip('not_object', undefined, 'a JWK must be an object');
  const kidValue = own(jwk, 'kid');
  if (typeof kidValue !== 'string' || kidValue.length === 0 || kidValue.length > MAX_JWK_KID_LENGTH) {
    return skip('no_kid', undefined, `a JWK needs a "kid" string of 1 to ${MAX_JWK_KID_LENGTH} characters`);
  }
  const kid = kidValue;

  const alg = own(jwk, 'alg');
  if (alg === undefined) return skip('no_alg', kid, 'no "alg": the algorithm is never taken from a token');
  if (typeof alg !== 'string' || !JWK_ALGORITHMS.has(alg)) {
    return skip('alg_unsupported', kid, `"alg" ${JSON.stringify(alg)} is not one of ${[...JWK_ALGORITHMS].join(', ')}`);
  }

  const use = own(jwk, 'use');
  if (use !== undefined && use !== 'sig') return skip('use_not_sig', kid, `"use" is ${JSON.stringify(use)}, not "sig"`);

  const keyOps = own(jwk, 'key_ops');
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify'))) {
    return skip('key_ops_no_verify', kid, '"key_ops" does not include "verify"');
  }

  const kty = own(jwk, 'kty');
  if (kty !== 'RSA' && kty !== 'EC') {
    return skip('kty_unsupported', kid, `"kty" ${JSON.stringify(kty)} is not RSA or EC`);
  }

  for (const member of PRIVATE_MEMBERS) {
    if (Object.prototype.hasOwnProperty.call(jwk, member)) {
      return skip('private_key', kid, `carries the private member "${member}"; a published set must hold public keys only`);
    }
  }

  let material: JsonWebKey;
  if (alg.startsWith('ES')) {
    if (kty !== 'EC') return skip('kty_mismatch', kid, `${alg} needs kty "EC", got "${kty}"`);
    const crv = own(jwk, 'crv');
    if (crv !== JWK_CURVES[alg]) {
      return skip('curve_mismatch', kid, `${alg} needs crv "${JWK_CURVES[alg]}", got ${JSON.stringify(crv)}`);
    }
    const x = own(jwk, 'x');
    const y = own(jwk, 'y');
    if (typeof x !== 'string' || typeof y !== 'string') return skip('bad_key', kid, 'an EC key needs "x" and "y" strings');
    material = { kty, crv: crv as string, x, y };
  } else {
    if (kty !== 'RSA') return skip('kty_mismatch', kid, `${alg} needs kty "RSA", got "${kty}"`);
    const n = own(jwk, 'n');
    const e = own(jwk, 'e');
    if (typeof n !== 'string' || typeof e !== 'string') return skip('bad_key', kid, 'an RSA key needs "n" and "e" strings');
    material = { kty, n, e };
  }

  let key: KeyObject;
  try {
    key = checkPublicKey(kid, alg as Algorithm, createPublicKey({ key: material, format: 'jwk' }));
  } catch (error) {
    if (error instanceof KeyMaterialError) return skip('bad_key', kid, error.message);
    const detail = error instanceof Error ? error.message : String(error);
    return skip('bad_key', kid, `unreadable key (${detail})`);
  }
  return { ok: true, key: Object.freeze({ kid, alg: alg as Algorithm, key, enabled: true }) };
}

/** One JWK as a verification key, or undefined when it is skipped (see {@link readJwk}). */
export function keyFromJwk(jwk: unknown): TenantKey | undefined {
  const result = readJwk(jwk);
  return result.ok ? result.key : undefined;
}

export type JwksErrorCode =
  | 'ERR_JWKS_ENCODING'
  | 'ERR_JWKS_JSON'
  | 'ERR_JWKS_SHAPE'
  | 'ERR_JWKS_TOO_MANY_KEYS'
  | 'ERR_JWKS_DUPLICATE_KID';

/** A key set refused as a whole. The message never holds key material. */
export class JwksError extends Error {
  readonly code: JwksErrorCode;

  constructor(code: JwksErrorCode, message: string) {
    super(message);
    this.name = 'JwksError';
    this.code = code;
  }
}

export interface ParsedJwks {
  /** The usable keys, in the set's order. */
  readonly keys: readonly TenantKey[];
  /** The entries skipped, with the reason; for the log. */
  readonly skipped: ReadonlyArray<{ readonly kid: string | undefined; readonly reason: JwkSkipReason; readonly detail: string }>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads a JWK Set: strict JSON (duplicate members refused), an object with a
 * `keys` array of at most {@link MAX_JWKS_KEYS} entries. Entries the gate
 * cannot use are skipped; two usable keys with one kid make the set
 * ambiguous, so the whole set is refused.
 */
export function readJwks(bytes: Buffer | string): ParsedJwks {
  let text: string;
  if (typeof bytes === 'string') {
    text = bytes;
  } else {
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new JwksError('ERR_JWKS_ENCODING', 'the key set is not valid UTF-8');
    }
  }
  let document: unknown;
  try {
    document = parseStrictJson(text, { maxDepth: MAX_JWKS_DEPTH });
  } catch (error) {
    if (error instanceof StrictJsonError) throw new JwksError('ERR_JWKS_JSON', `the key set is not valid JSON: ${error.message}`);
    throw error;
  }
  if (!isRecord(document)) throw new JwksError('ERR_JWKS_SHAPE', 'the key set must be an object with a "keys" array');
  const list = own(document, 'keys');
  if (!Array.isArray(list)) throw new JwksError('ERR_JWKS_SHAPE', 'the key set must be an object with a "keys" array');
  if (list.length > MAX_JWKS_KEYS) {
    throw new JwksError('ERR_JWKS_TOO_MANY_KEYS', `the key set lists ${list.length} keys, at most ${MAX_JWKS_KEYS} are accepted`);
  }

  const keys: TenantKey[] = [];
  const skipped: Array<{ kid: string | undefined; reason: JwkSkipReason; detail: string }> = [];
  const kids = new Set<string>();
  for (const entry of list) {
    const result = readJwk(entry);
    if (!result.ok) {
      skipped.push({ kid: result.kid, reason: result.reason, detail: result.detail });
      continue;
    }
    if (kids.has(result.key.kid)) {
      throw new JwksError('ERR_JWKS_DUPLICATE_KID', `the key set lists kid ${JSON.stringify(result.key.kid)} more than once`);
    }
    kids.add(result.key.kid);
    keys.push(result.key);
  }
  return { keys: Object.freeze(keys), skipped: Object.freeze(skipped) };
}

/** The usable keys of a JWK Set; throws {@link JwksError} for a set refused as a whole. */
export function parseJwks(bytes: Buffer | string): TenantKey[] {
  return [...readJwks(bytes).keys];
}
