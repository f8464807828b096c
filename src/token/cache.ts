import type { KeySet, TenantKey } from './key.ts';

/** Longer tokens are verified every time, never kept. */
export const MAX_CACHED_TOKEN_LENGTH = 2048;

interface Entry {
  readonly keys: KeySet;
  readonly key: TenantKey;
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * Tokens whose signature was verified, so that a client reusing its token
 * does not pay for the signature again. An entry is found only by the exact
 * token string, and counts only for the very KeySet it was verified against:
 * every reload or JWKS fetch builds new KeySets, so an entry can never outlive
 * the keys that made it. Time-dependent checks (exp, nbf, iat, the key's
 * window) are repeated on every hit by the verifier; only the signature and
 * the decoding are skipped. Bounded: at most `maxEntries` tokens of at most
 * 2 KiB each, the oldest going first.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, Entry>();
  readonly maxEntries: number;

  constructor(maxEntries = 10_000) {
    if (!(Number.isSafeInteger(maxEntries) && maxEntries > 0)) throw new RangeError('maxEntries must be a positive integer');
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, keys: KeySet): Entry | undefined {
    const entry = this.#entries.get(token);
    return entry !== undefined && entry.keys === keys ? entry : undefined;
  }

  set(token: string, keys: KeySet, key: TenantKey, claims: Readonly<Record<string, unknown>>): void {
    // Bounded in bytes too: 10,000 tokens of the 16 KiB a token may have
    // would hold 160 MiB. Ordinary tokens are a few hundred bytes.
    if (token.length > MAX_CACHED_TOKEN_LENGTH) return;
    if (this.#entries.size >= this.maxEntries && !this.#entries.has(token)) {
      // Maps iterate in insertion order: the first key is the oldest.
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    this.#entries.set(token, { keys, key, claims });
  }

  clear(): void {
    this.#entries.clear();
  }
}
