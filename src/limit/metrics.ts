import { Counter, Gauge, type Registry } from 'prom-client';
import type { RateLimiter } from './limiter.ts';

/**
 * The rate limiter's metrics, read from the limiter when scraped (no work
 * per decision): whether shared counting is degraded, and how many
 * decisions were counted locally because Redis was unavailable.
 */
export function registerRateLimitMetrics(registry: Registry, limiter: RateLimiter): void {
  new Gauge({
    name: 'oingate_rate_limit_degraded',
    help: 'Whether rate limits are counted locally because the shared Redis is unavailable (1) or shared (0)',
    registers: [registry],
    collect() {
      this.set(limiter.status()?.degraded ? 1 : 0);
    },
  });
  new Counter({
    name: 'oingate_rate_limit_fallback_decisions_total',
    help: 'Rate limit decisions counted locally because the shared Redis was unavailable',
    registers: [registry],
    collect() {
      // A total kept by the limiter: set it rather than add to it.
      this.reset();
      this.inc(limiter.stats().fallbackDecisions);
    },
  });
  new Counter({
    name: 'oingate_rate_limit_redis_errors_total',
    help: 'Rate limit Redis commands that failed or did not answer within the command timeout',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(limiter.stats().redisErrors);
    },
  });
}
