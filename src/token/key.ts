import type { KeyObject } from 'node:crypto';
import type { Algorithm } from '../model/algorithms.ts';

/**
 * One verification key of one tenant, built once at snapshot load (or JWKS
 * fetch). `alg` pins the algorithm: the token header never chooses it.
 */
export interface TenantKey {
  readonly kid: string;
  readonly alg: Algorithm;
  readonly key: KeyObject;
  readonly enabled: boolean;
  /** epoch milliseconds; the key is unusable before it */
  readonly notBefore?: number;
  /** epoch milliseconds; the key is unusable from it on */
  readonly expiresAt?: number;
}

/** The longest kid accepted, in a whitelist or a JWKS alike. */
export const MAX_KID_LENGTH = 256;

/** Finds a key by kid. */
export interface KidIndex {
  get(kid: string): TenantKey | undefined;
  has(kid: string): boolean;
}

/** A tenant's keys, indexed once: by kid, and in order for tokens without one. */
export interface KeySet {
  readonly byKid: KidIndex;
  readonly list: readonly TenantKey[];
}

// A tenant has a handful of keys: scanning them beats hashing, and costs no
// Map per tenant in a whitelist of 100k tenants.
const SCAN_LIMIT = 8;

class KeyScan implements KidIndex {
  constructor(private readonly keys: readonly TenantKey[]) {}
  get(kid: string): TenantKey | undefined {
    for (const key of this.keys) if (key.kid === kid) return key;
    return undefined;
  }
  has(kid: string): boolean {
    return this.get(kid) !== undefined;
  }
}

export function keySet(keys: readonly TenantKey[]): KeySet {
  const byKid = keys.length <= SCAN_LIMIT ? new KeyScan(keys) : new Map(keys.map((k) => [k.kid, k]));
  return { byKid, list: keys };
}

export function isUsable(key: TenantKey, nowMs: number): boolean {
  if (!key.enabled) return false;
  if (key.notBefore !== undefined && nowMs < key.notBefore) return false;
  if (key.expiresAt !== undefined && nowMs >= key.expiresAt) return false;
  return true;
}
