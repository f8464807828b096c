import { performance } from 'node:perf_hooks';
import type { Verdict } from './gcra.ts';
import { LocalLimiter } from './local.ts';
import type { RateLimit } from './rate.ts';
import type { LimitLogger, RateLimitStats, RateLimitStatus } from './redis.ts';

export type { Verdict } from './gcra.ts';
export type { RateLimit } from './rate.ts';
export type { LimitLogger, RateLimitStats, RateLimitStatus } from './redis.ts';

export interface RateLimiterOptions {
  /** OINGATE_RATE_LIMIT_REDIS; without it every instance counts on its own. */
  redisUrl?: string;
  /** Longest wait for Redis per decision (default 50 ms). */
  commandTimeoutMs?: number;
  logger?: LimitLogger;
  onStateChange?: (status: RateLimitStatus) => void;
  /** Cap on tenants held by the local count (default 100000). */
  maxEntries?: number;
}

export interface RateLimiter {
  /**
   * Spends one request of the tenant's budget. Synchronous when counted
   * locally (no Redis configured, or Redis degraded); never rejects.
   * `nowMs` is a monotonic clock for the local count (default
   * performance.now()); shared counts use Redis's clock.
   */
  take(oin: string, limit: RateLimit, nowMs?: number): Verdict | Promise<Verdict>;
  /** For /readyz; undefined when limits are not shared. */
  status(): RateLimitStatus | undefined;
  stats(): RateLimitStats;
  /** Resolves true once shared counting works (immediately true without Redis). */
  ready(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** The Redis key per tenant; OINs are validated digits before they get here. */
export const KEY_PREFIX = 'oingate:rl:';

/**
 * The local count, or with `redisUrl` the shared one. The Redis limiter
 * (and ioredis, ~150 ms to import) is loaded only then: a start without
 * Redis does not pay for it, and a start with Redis fails if it is missing.
 */
export async function createRateLimiter(options: RateLimiterOptions = {}): Promise<RateLimiter> {
  const local = new LocalLimiter({ maxEntries: options.maxEntries });
  if (!options.redisUrl) {
    return {
      take: (oin, limit, nowMs = performance.now()) => local.take(oin, limit, nowMs),
      status: () => undefined,
      stats: () => ({ fallbackDecisions: 0, redisErrors: 0 }),
      ready: () => Promise.resolve(true),
      close: () => {
        local.clear();
        return Promise.resolve();
      },
    };
  }
  const { RedisLimiter } = await import('./redis.ts');
  const shared = new RedisLimiter({
    url: options.redisUrl,
    commandTimeoutMs: options.commandTimeoutMs,
    logger: options.logger,
    onStateChange: options.onStateChange,
    local,
  });
  return {
    take: (oin, limit, nowMs = performance.now()) => shared.take(KEY_PREFIX + oin, limit, nowMs),
    status: () => shared.status(),
    stats: () => shared.stats(),
    ready: (timeoutMs) => shared.ready(timeoutMs),
    close: () => shared.close(),
  };
}

/**
 * Headers for a rate-limited answer: Retry-After (RFC 9110) when refused, and
 * the RateLimit-Limit / -Remaining / -Reset fields of the IETF httpapi
 * ratelimit-headers draft (its -07 form; later drafts merge them into
 * `RateLimit` and `RateLimit-Policy`).
 */
export function rateLimitHeaders(verdict: Verdict): Record<string, string> {
  const headers: Record<string, string> = {
    'ratelimit-limit': String(verdict.limit),
    'ratelimit-remaining': String(verdict.remaining),
    'ratelimit-reset': String(verdict.resetSeconds),
  };
  if (!verdict.allowed) headers['retry-after'] = String(verdict.retryAfterSeconds);
  return headers;
}
