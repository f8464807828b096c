import { expect } from 'chai';
import { Registry } from 'prom-client';
import { createRateLimiter, rateLimitHeaders, type RateLimitStatus } from '../../src/limit/limiter.ts';
import { registerRateLimitMetrics } from '../../src/limit/metrics.ts';
import { eventually } from '../support/gate.ts';
import { startRedis } from '../support/redis.ts';

const OIN = '00000001234567890000';

describe('limit/limiter: the facade the gate calls', () => {
  it('counts locally and synchronously without Redis, and has no status', async () => {
    const limiter = await createRateLimiter();
    const limit = { perSecond: 5, burst: 2 };
    const first = limiter.take(OIN, limit, 0);
    expect(first).to.not.be.instanceOf(Promise);
    expect(first).to.include({ allowed: true, remaining: 1 });
    limiter.take(OIN, limit, 0);
    expect(limiter.take(OIN, limit, 0)).to.include({ allowed: false, retryAfterSeconds: 1 });
    expect(limiter.take(OIN, limit, 200)).to.include({ allowed: true });
    expect(limiter.status()).to.equal(undefined);
    expect(await limiter.ready(10)).to.equal(true);
    await limiter.close();
  });

  it('uses a monotonic clock when none is given', async () => {
    const limiter = await createRateLimiter();
    const limit = { perSecond: 1, burst: 3 };
    const allowed = [1, 2, 3, 4].map(() => (limiter.take(OIN, limit) as { allowed: boolean }).allowed);
    expect(allowed).to.deep.equal([true, true, true, false]);
  });

  it('builds Retry-After and RateLimit headers for a refusal', async () => {
    const limiter = await createRateLimiter();
    const limit = { perSecond: 1, burst: 1 };
    const allowed = limiter.take(OIN, limit, 0) as Parameters<typeof rateLimitHeaders>[0];
    expect(rateLimitHeaders(allowed)).to.deep.equal({ 'ratelimit-limit': '1', 'ratelimit-remaining': '0', 'ratelimit-reset': '1' });
    const refused = limiter.take(OIN, limit, 0) as Parameters<typeof rateLimitHeaders>[0];
    expect(rateLimitHeaders(refused)).to.deep.equal({
      'ratelimit-limit': '1',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '1',
      'retry-after': '1',
    });
  });

  it('rounds Retry-After up to whole seconds for slow refills', async () => {
    const limiter = await createRateLimiter();
    const limit = { perSecond: 1, burst: 1 };
    limiter.take(OIN, limit, 0);
    expect(limiter.take(OIN, limit, 100)).to.include({ allowed: false, retryAfterSeconds: 1 });
    const hourly = { perSecond: 1, burst: 3600 };
    for (let i = 0; i < 3600; i++) limiter.take('x', hourly, 0);
    expect(limiter.take('x', hourly, 0)).to.include({ allowed: false, retryAfterSeconds: 1, resetSeconds: 3600 });
  });

  it('reports each change between shared and local counting', async () => {
    const redis = await startRedis();
    const changes: RateLimitStatus[] = [];
    const limiter = await createRateLimiter({ redisUrl: redis.url, commandTimeoutMs: 50, onStateChange: (s) => changes.push(s) });
    const registry = new Registry();
    registerRateLimitMetrics(registry, limiter);
    try {
      expect(await limiter.ready(5000)).to.equal(true);
      expect(changes.map((c) => c.degraded)).to.deep.equal([false]);
      expect(await registry.getSingleMetricAsString('oingate_rate_limit_degraded')).to.match(/ 0$/m);
      await redis.kill();
      await eventually(() => {
        expect(changes.map((c) => c.degraded)).to.deep.equal([false, true]);
      }, 3000);
      expect(await limiter.take(OIN, { perSecond: 1, burst: 1 })).to.include({ allowed: true });
      expect(await registry.getSingleMetricAsString('oingate_rate_limit_fallback_decisions_total')).to.match(/ 1$/m);
    } finally {
      await limiter.close();
      await redis.destroy();
    }
  });
});
