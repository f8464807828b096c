import { emissionInterval, slack, verdictOf, type Verdict } from './gcra.ts';
import type { RateLimit } from './rate.ts';

export interface LocalLimiterOptions {
  /** Most keys held at once; beyond it the oldest are dropped (default 100000). */
  maxEntries?: number;
}

const DEFAULT_MAX_ENTRIES = 100_000;
const MIN_SWEEP_SIZE = 1024;

/**
 * GCRA per key in memory: one number per key, the theoretical arrival time
 * (TAT) in microseconds on the caller's clock. A TAT at or before now is a
 * full bucket, so such entries carry no information and are dropped.
 *
 * Memory: a sweep of full entries runs when the map has doubled since the
 * last one (amortised O(1) per take); past `maxEntries` the oldest-inserted
 * live entries go too, which hands those keys a full bucket (keys are
 * whitelisted tenants, so the cap is a safety net, not a working limit).
 *
 * A changed limit for a key applies at its next take: the debt is kept in
 * time, so a new burst applies at once and a new rate from the next refill.
 */
export class LocalLimiter {
  readonly #tat = new Map<string, number>();
  readonly #maxEntries: number;
  #sweepAt = MIN_SWEEP_SIZE;

  constructor(options: LocalLimiterOptions = {}) {
    this.#maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_MAX_ENTRIES);
  }

  take(key: string, limit: RateLimit, nowMs: number): Verdict {
    const now = nowMs * 1000;
    const interval = emissionInterval(limit);
    const stored = this.#tat.get(key);
    const tat = stored === undefined || stored < now ? now : stored;
    const next = tat + interval;
    if (next - now > limit.burst * interval + slack(interval)) return verdictOf(false, tat - now, limit);
    if (stored === undefined) this.#makeRoom(now);
    this.#tat.set(key, next);
    return verdictOf(true, next - now, limit);
  }

  /**
   * Adopts a shared verdict: the bucket stands `debtUs` ahead of `nowMs`, as
   * Redis said. A fallback then goes on from the shared state instead of
   * handing every instance a fresh burst.
   */
  record(key: string, debtUs: number, nowMs: number): void {
    const now = nowMs * 1000;
    if (debtUs <= 0) {
      this.#tat.delete(key);
      return;
    }
    if (!this.#tat.has(key)) this.#makeRoom(now);
    this.#tat.set(key, now + debtUs);
  }

  /** Keys held now (for tests and metrics). */
  get size(): number {
    return this.#tat.size;
  }

  /** Drops every entry whose bucket is full again at `nowMs`. */
  sweep(nowMs: number): void {
    const now = nowMs * 1000;
    for (const [key, tat] of this.#tat) if (tat <= now) this.#tat.delete(key);
  }

  clear(): void {
    this.#tat.clear();
  }

  #makeRoom(now: number): void {
    const size = this.#tat.size;
    if (size < this.#sweepAt && size < this.#maxEntries) return;
    this.sweep(now / 1000);
    // Maps iterate in insertion order: the first keys are the oldest. Leaving a
    // tenth free keeps the next sweep many inserts away.
    const target = Math.floor(this.#maxEntries * 0.9);
    if (this.#tat.size >= this.#maxEntries) {
      for (const key of this.#tat.keys()) {
        if (this.#tat.size <= target) break;
        this.#tat.delete(key);
      }
    }
    this.#sweepAt = Math.min(this.#maxEntries, Math.max(MIN_SWEEP_SIZE, this.#tat.size * 2));
  }
}
