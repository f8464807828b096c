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

/** A tenant's keys, indexed once: by kid, and in order for tokens without one. */
export interface KeySet {
  readonly byKid: ReadonlyMap<string, TenantKey>;
  readonly list: readonly TenantKey[];
}

export function keySet(keys: readonly TenantKey[]): KeySet {
  return { byKid: new Map(keys.map((k) => [k.kid, k])), list: keys };
}

export function isUsable(key: TenantKey, nowMs: number): boolean {
  if (!key.enabled) return false;
  if (key.notBefore !== undefined && nowMs < key.notBefore) return false;
  if (key.expiresAt !== undefined && nowMs >= key.expiresAt) return false;
  return true;
}
