import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createRateLimiter, KEY_PREFIX, type RateLimiter, type Verdict } from '../../src/limit/limiter.ts';
import { registerRateLimitMetrics } from '../../src/limit/metrics.ts';
import { RedisLimiter } from '../../src/limit/redis.ts';
import { describeUrl, RedisUrlError } from '../../src/limit/redis-url.ts';
import { freePort } from '../bench/lib/external.ts';
import { eventually } from '../support/gate.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const OIN = '00000001234567890000';
const OTHER = '00000009876543210000';
const TIMEOUT_MS = 50;
// A decision may wait the command timeout, plus slack for a loaded 2-core machine.
const ANSWER_BOUND_MS = TIMEOUT_MS + 150;

interface Line {
  level: 'warn' | 'info';
  object: object;
  message: string;
}

function recordingLogger(lines: Line[]) {
  return {
    warn: (object: object, message: string) => lines.push({ level: 'warn', object, message }),
    info: (object: object, message: string) => lines.push({ level: 'info', object, message }),
  };
}

async function admittedOf(limiter: RateLimiter, oin: string, limit: { perSecond: number; burst: number }, tries: number) {
  let admitted = 0;
  for (let i = 0; i < tries; i++) if ((await limiter.take(oin, limit)).allowed) admitted++;
  return admitted;
}

async function sharedLimiter(redis: TestRedis, lines: Line[] = []): Promise<RateLimiter> {
  const limiter = await createRateLimiter({ redisUrl: redis.url, commandTimeoutMs: TIMEOUT_MS, logger: recordingLogger(lines) });
  expect(await limiter.ready(5000), 'limiter connects to Redis').to.equal(true);
  return limiter;
}

/** Polls until `check` passes (its value, an assertion, is ignored). */
const until = (check: () => unknown, timeoutMs: number) =>
  eventually(async () => {
    await check();
  }, timeoutMs);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('limit/redis: limits shared through Redis', function () {
  let redis: TestRedis;
  let raw: Redis;
  const open: RateLimiter[] = [];

  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    raw.on('error', () => undefined);
    await raw.connect();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((l) => l.close()));
    if (raw.status === 'ready') await raw.flushall();
  });
  after(async () => {
    raw.disconnect();
    await redis.destroy();
  });

  async function limiter(lines: Line[] = []): Promise<RateLimiter> {
    const made = await sharedLimiter(redis, lines);
    open.push(made);
    return made;
  }

  it('admits the burst, refuses past it with Retry-After, and refills', async () => {
    const l = await limiter();
    const limit = { perSecond: 10, burst: 5 };
    const verdicts: Verdict[] = [];
    for (let i = 0; i < 6; i++) verdicts.push(await l.take(OIN, limit));
    expect(verdicts.map((v) => v.allowed)).to.deep.equal([true, true, true, true, true, false]);
    expect(verdicts.slice(0, 5).map((v) => v.remaining)).to.deep.equal([4, 3, 2, 1, 0]);
    expect(verdicts[5]).to.include({ allowed: false, remaining: 0, retryAfterSeconds: 1, limit: 5 });
    // One request refills every 100 ms.
    await until(async () => expect((await l.take(OIN, limit)).allowed).to.equal(true), 2000);
    expect(l.status()).to.deep.include({ degraded: false, lastError: null });
  });

  it('decides many requests of one moment in one call, each exactly once', async () => {
    const a = await limiter();
    const b = await limiter();
    const limit = { perSecond: 1, burst: 10 };
    const verdicts = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).take(i % 4 < 2 ? OIN : OTHER, limit)),
    );
    const admitted = (oin: string) => verdicts.filter((v, i) => v.allowed && (i % 4 < 2 ? OIN : OTHER) === oin).length;
    expect([admitted(OIN), admitted(OTHER)]).to.deep.equal([10, 10]);
    // Each admitted request of a tenant saw a different remaining count.
    const remaining = verdicts.filter((v, i) => v.allowed && i % 4 < 2).map((v) => v.remaining);
    expect(new Set(remaining).size).to.equal(10);
  });

  it('decides one call per request when batching is off', async () => {
    const l = new RedisLimiter({ url: redis.url, commandTimeoutMs: TIMEOUT_MS, batch: false });
    try {
      expect(await l.ready(5000)).to.equal(true);
      const verdicts = await Promise.all(Array.from({ length: 8 }, () => l.take(KEY_PREFIX + OIN, { perSecond: 1, burst: 5 }, 0)));
      expect(verdicts.filter((v) => v.allowed)).to.have.length(5);
      const calls = /cmdstat_evalsha:calls=(\d+)/.exec(await raw.info('commandstats'));
      expect(Number(calls?.[1])).to.be.at.least(8);
    } finally {
      await l.close();
    }
  });

  it('keeps one key per tenant, expiring when the bucket is full again', async () => {
    const l = await limiter();
    await l.take(OIN, { perSecond: 2, burst: 4 });
    await l.take(OTHER, { perSecond: 2, burst: 4 });
    const ttl = await raw.pttl(KEY_PREFIX + OIN);
    // One request at 2 per second is refilled after 500 ms.
    expect(ttl).to.be.within(1, 502);
    expect(await raw.exists(KEY_PREFIX + OTHER)).to.equal(1);
    await until(async () => expect(await raw.exists(KEY_PREFIX + OIN)).to.equal(0), 2000);
  });

  it('lets two instances together admit the limit, not twice it', async () => {
    const a = await limiter();
    const b = await limiter();
    const limit = { perSecond: 1, burst: 20 };
    let admitted = 0;
    for (let i = 0; i < 30; i++) {
      if ((await a.take(OIN, limit)).allowed) admitted++;
      if ((await b.take(OIN, limit)).allowed) admitted++;
    }
    // 20 at once, perhaps one more refilled while the loop ran.
    expect(admitted).to.be.within(20, 21);
    expect(await admittedOf(a, OTHER, limit, 25)).to.equal(20);
  });

  it('applies a changed limit at the next request', async () => {
    const l = await limiter();
    expect(await admittedOf(l, OIN, { perSecond: 1, burst: 3 }, 10)).to.equal(3);
    expect(await admittedOf(l, OIN, { perSecond: 1, burst: 8 }, 10)).to.equal(5);
    expect(await admittedOf(l, OTHER, { perSecond: 1, burst: 8 }, 10)).to.equal(8);
  });

  it('loads the script again when Redis has forgotten it', async () => {
    const l = await limiter();
    await l.take(OIN, { perSecond: 1, burst: 5 });
    await raw.script('FLUSH');
    expect(await admittedOf(l, OIN, { perSecond: 1, burst: 5 }, 10)).to.equal(4);
    expect(l.status()?.degraded).to.equal(false);
    expect(l.stats().redisErrors).to.equal(0);
  });

  it('overwrites a tenant key that holds something else instead of failing on it', async () => {
    const l = await limiter();
    await raw.lpush(KEY_PREFIX + OIN, 'junk');
    expect(await admittedOf(l, OIN, { perSecond: 1, burst: 2 }, 4)).to.equal(2);
    await raw.set(KEY_PREFIX + OTHER, 'not a number');
    expect(await admittedOf(l, OTHER, { perSecond: 1, burst: 2 }, 4)).to.equal(2);
    expect(l.status()?.degraded).to.equal(false);
  });

  it('stays local while Redis refuses writes, without flapping, and comes back when it takes them again', async () => {
    const lines: Line[] = [];
    const l = await limiter(lines);
    await raw.config('SET', 'maxmemory-policy', 'noeviction');
    await raw.config('SET', 'maxmemory', '1');
    try {
      expect(await l.take(OIN, { perSecond: 1, burst: 1 })).to.include({ allowed: true });
      expect(l.status()?.degraded).to.equal(true);
      expect(l.status()?.lastError).to.match(/^OOM/);
      // PING would answer; the probe runs the script, so it stays degraded.
      await sleep(600);
      expect(l.status()?.degraded).to.equal(true);
      expect(lines.filter((line) => line.level === 'info')).to.have.length(1);
    } finally {
      await raw.config('SET', 'maxmemory', '0');
    }
    await until(() => expect(l.status()?.degraded).to.equal(false), 5000);
  });

  it('counts locally while Redis is down, answers within the timeout, and returns by itself to a Redis that starts anew', async () => {
    const lines: Line[] = [];
    const l = await limiter(lines);
    const registry = new Registry();
    registerRateLimitMetrics(registry, l);
    const limit = { perSecond: 1, burst: 3 };
    expect(await admittedOf(l, OIN, limit, 5)).to.equal(3);

    let slowest = 0;
    let answered = 0;
    let running = true;
    const traffic = (async () => {
      while (running) {
        const started = performance.now();
        await l.take(OTHER, { perSecond: 1000, burst: 1000 });
        slowest = Math.max(slowest, performance.now() - started);
        answered++;
        await sleep(2);
      }
    })();
    try {
      await sleep(50);
      await redis.kill();
      await until(() => expect(l.status()?.degraded).to.equal(true), 2000);
      const degraded = l.status();
      expect(degraded?.lastError).to.be.a('string').that.is.not.empty;
      expect(lines.some((line) => line.level === 'warn' && /counting locally/.test(line.message))).to.equal(true);
      expect(await registry.getSingleMetricAsString('oingate_rate_limit_degraded')).to.match(/ 1$/m);
      // Counted locally meanwhile, synchronously: a new tenant with the full limit,
      // the tenant spent in Redis from where Redis left it, not with a fresh burst.
      const fresh = l.take('00000005555555550000', { perSecond: 1, burst: 2 });
      expect(fresh).to.not.be.instanceOf(Promise);
      expect(fresh).to.include({ allowed: true, remaining: 1 });
      expect(l.take(OIN, limit)).to.include({ allowed: false });
      await sleep(300);
      const before = answered;
      await sleep(200);
      expect(answered - before, 'decisions go on while Redis is down').to.be.above(10);

      await redis.start();
      await until(() => expect(l.status()).to.deep.include({ degraded: false, lastError: null }), 5000);
      expect(lines.some((line) => line.level === 'info' && /shared through Redis/.test(line.message))).to.equal(true);
    } finally {
      running = false;
      await traffic;
    }
    expect(slowest, 'slowest decision (ms)').to.be.below(ANSWER_BOUND_MS);
    expect(await registry.getSingleMetricAsString('oingate_rate_limit_degraded')).to.match(/ 0$/m);
    expect(await registry.getSingleMetricAsString('oingate_rate_limit_fallback_decisions_total')).to.match(/ [1-9]\d*$/m);
    // The restarted Redis is empty: the tenant spent before the crash has a full bucket, counted in Redis.
    expect(await admittedOf(l, OIN, limit, 5)).to.equal(3);
    expect(await raw.exists(KEY_PREFIX + OIN)).to.equal(1);
  });

  it('does not let a Redis that stops answering slow the decisions', async () => {
    const l = await limiter();
    const limit = { perSecond: 1000, burst: 1000 };
    redis.pause();
    try {
      let slowest = 0;
      for (let i = 0; i < 50; i++) {
        const started = performance.now();
        expect((await l.take(OIN, limit)).allowed).to.equal(true);
        slowest = Math.max(slowest, performance.now() - started);
      }
      expect(slowest).to.be.below(ANSWER_BOUND_MS);
      expect(l.status()).to.deep.include({ degraded: true, lastError: 'Command timed out' });
      // After the first timeout no decision waits for Redis.
      const started = performance.now();
      for (let i = 0; i < 100; i++) await l.take(OIN, limit);
      expect(performance.now() - started).to.be.below(ANSWER_BOUND_MS);
    } finally {
      redis.resume();
    }
    await until(() => expect(l.status()?.degraded).to.equal(false), 5000);
  });

  it('admits within 10 % of burst + perSecond x 3 from two instances over 3 s at twice the limit', async function () {
    this.timeout(15000);
    const a = await limiter();
    const b = await limiter();
    const limit = { perSecond: 40, burst: 20 };
    const expected = limit.burst + limit.perSecond * 3;
    // Each instance offers the full rate: together twice the limit.
    const run = async (l: RateLimiter) => {
      let admitted = 0;
      const started = performance.now();
      for (let n = 0; ; n++) {
        const due = started + (n * 1000) / limit.perSecond;
        if (due >= started + 3000) return admitted;
        await sleep(Math.max(0, due - performance.now()));
        if ((await l.take(OIN, limit)).allowed) admitted++;
      }
    };
    const [fromA, fromB] = await Promise.all([run(a), run(b)]);
    const total = fromA + fromB;
    const fallbacks = a.stats().fallbackDecisions + b.stats().fallbackDecisions;
    console.log(`      accuracy: admitted ${total} (${fromA} + ${fromB}) of ${limit.perSecond * 2 * 3} offered; burst + perSecond x 3 = ${expected}; counted locally: ${fallbacks}`);
    expect(Math.abs(total - expected) / expected).to.be.at.most(0.1);
  });
});

describe('limit/redis: an unreachable Redis', () => {
  it('counts locally from the start, never throws, and leaves no handles after close', async () => {
    const port = await freePort();
    const before = process.getActiveResourcesInfo().length;
    const lines: Line[] = [];
    const l = await createRateLimiter({ redisUrl: `redis://127.0.0.1:${port}`, commandTimeoutMs: TIMEOUT_MS, logger: recordingLogger(lines) });
    const limit = { perSecond: 1, burst: 2 };
    const verdicts = [];
    for (let i = 0; i < 3; i++) verdicts.push(await l.take(OIN, limit));
    expect(verdicts.map((v) => v.allowed)).to.deep.equal([true, true, false]);
    await until(() => expect(l.status()?.lastError).to.match(/ECONNREFUSED/), 3000);
    expect(l.status()?.degraded).to.equal(true);
    expect(await l.ready(100)).to.equal(false);
    await l.close();
    await sleep(20);
    expect(process.getActiveResourcesInfo().length).to.be.at.most(before);
  });

  it('never shows the password in status, errors or logs', async () => {
    const port = await freePort();
    const lines: Line[] = [];
    const url = `redis://admin:s3cr%40t@127.0.0.1:${port}/2?password=s3cr@t`;
    const l = await createRateLimiter({ redisUrl: url, commandTimeoutMs: TIMEOUT_MS, logger: recordingLogger(lines) });
    try {
      await l.take(OIN, { perSecond: 1, burst: 1 });
      await until(() => expect(l.status()?.lastError).to.match(/ECONNREFUSED/), 3000);
      expect(l.status()?.store).to.equal(`redis://127.0.0.1:${port}/2`);
      expect(JSON.stringify([l.status(), lines])).to.not.include('s3cr');
    } finally {
      await l.close();
    }
  });

  it('refuses a URL that is not redis:// or rediss://, without its password', () => {
    expect(() => describeUrl('http://u:hunter2@example.test/')).to.throw(RedisUrlError, /http:\/\/example\.test/);
    expect(() => describeUrl('http://u:hunter2@example.test/')).to.not.throw(/hunter2/);
    expect(() => describeUrl('not a url')).to.throw(RedisUrlError);
    expect(describeUrl('rediss://:pw@cache.internal:6380/1')).to.deep.equal({ shown: 'rediss://cache.internal:6380/1', secret: 'pw' });
  });
});
