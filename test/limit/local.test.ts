import { expect } from 'chai';
import { LocalLimiter } from '../../src/limit/local.ts';

const admitted = (limiter: LocalLimiter, key: string, limit: { perSecond: number; burst: number }, nowMs: number, tries: number) => {
  let count = 0;
  for (let i = 0; i < tries; i++) if (limiter.take(key, limit, nowMs).allowed) count++;
  return count;
};

describe('limit/local: GCRA in memory', () => {
  it('admits a full burst at once, then refuses', () => {
    const limiter = new LocalLimiter();
    const limit = { perSecond: 10, burst: 5 };
    const remaining = [];
    for (let i = 0; i < 5; i++) {
      const v = limiter.take('a', limit, 1000);
      expect(v.allowed).to.equal(true);
      remaining.push(v.remaining);
    }
    expect(remaining).to.deep.equal([4, 3, 2, 1, 0]);
    const refused = limiter.take('a', limit, 1000);
    expect(refused).to.include({ allowed: false, remaining: 0, limit: 5 });
    expect(refused.retryAfterSeconds).to.equal(1);
  });

  it('refills at perSecond', () => {
    const limiter = new LocalLimiter();
    const limit = { perSecond: 10, burst: 10 };
    expect(admitted(limiter, 'a', limit, 0, 20)).to.equal(10);
    expect(admitted(limiter, 'a', limit, 99, 5)).to.equal(0);
    expect(admitted(limiter, 'a', limit, 100, 5)).to.equal(1);
    expect(admitted(limiter, 'a', limit, 600, 10)).to.equal(5);
    // Over a long run the rate is perSecond, the burst once: 10 at 10 s, then one per 100 ms until 19.99 s.
    let total = 0;
    for (let t = 10_000; t < 20_000; t += 10) total += admitted(limiter, 'b', limit, t, 3);
    expect(total).to.equal(10 + 99);
  });

  it('keeps exact counts for rates whose interval is not a whole number', () => {
    const limiter = new LocalLimiter();
    const limit = { perSecond: 3, burst: 3 };
    expect(admitted(limiter, 'a', limit, 0, 10)).to.equal(3);
    expect(admitted(limiter, 'a', limit, 1000, 10)).to.equal(3);
  });

  it('says how long to wait, in whole seconds, at least 1', () => {
    const limiter = new LocalLimiter();
    const slow = { perSecond: 1, burst: 1 };
    limiter.take('a', slow, 0);
    expect(limiter.take('a', slow, 0).retryAfterSeconds).to.equal(1);
    expect(limiter.take('a', slow, 999.5).retryAfterSeconds).to.equal(1);
    const fast = { perSecond: 1000, burst: 1 };
    limiter.take('b', fast, 0);
    const v = limiter.take('b', fast, 0);
    expect(v.allowed).to.equal(false);
    expect(v.retryAfterSeconds).to.equal(1);
  });

  it('reports the seconds until the bucket is full again', () => {
    const limiter = new LocalLimiter();
    const limit = { perSecond: 2, burst: 10 };
    expect(limiter.take('a', limit, 0).resetSeconds).to.equal(1);
    for (let i = 0; i < 8; i++) limiter.take('a', limit, 0);
    expect(limiter.take('a', limit, 0).resetSeconds).to.equal(5);
  });

  it('keeps tenants apart', () => {
    const limiter = new LocalLimiter();
    const limit = { perSecond: 1, burst: 2 };
    expect(admitted(limiter, 'a', limit, 0, 10)).to.equal(2);
    expect(admitted(limiter, 'b', limit, 0, 10)).to.equal(2);
  });

  it('applies a lowered limit at the next request without touching other keys', () => {
    const limiter = new LocalLimiter();
    const wide = { perSecond: 100, burst: 100 };
    expect(admitted(limiter, 'a', wide, 0, 10)).to.equal(10);
    expect(admitted(limiter, 'b', wide, 0, 10)).to.equal(10);
    // 'a' now gets 5 per second, burst 5, and has used 100 ms' worth at the old rate.
    const narrow = { perSecond: 5, burst: 5 };
    expect(admitted(limiter, 'a', narrow, 0, 10)).to.equal(4);
    expect(admitted(limiter, 'b', wide, 0, 200)).to.equal(90);
  });

  it('applies a raised burst at once', () => {
    const limiter = new LocalLimiter();
    expect(admitted(limiter, 'a', { perSecond: 10, burst: 10 }, 0, 20)).to.equal(10);
    expect(admitted(limiter, 'a', { perSecond: 10, burst: 30 }, 0, 50)).to.equal(20);
  });

  it('adopts a bucket state reported from elsewhere', () => {
    const limiter = new LocalLimiter();
    const limit = { perSecond: 10, burst: 10 };
    // 950 ms of debt: room for half a request.
    limiter.record('a', 950_000, 0);
    expect(admitted(limiter, 'a', limit, 0, 5)).to.equal(0);
    expect(admitted(limiter, 'a', limit, 50, 5)).to.equal(1);
    limiter.record('a', 0, 100);
    expect(admitted(limiter, 'a', limit, 100, 20)).to.equal(10);
  });

  it('drops entries whose bucket is full again', () => {
    const limiter = new LocalLimiter();
    const limit = { perSecond: 10, burst: 10 };
    for (let i = 0; i < 3000; i++) limiter.take(`k${i}`, limit, 0);
    // Each bucket is full again 100 ms later: the next sweep drops them.
    for (let i = 0; i < 5; i++) limiter.take(`late${i}`, limit, 1000);
    limiter.sweep(1000);
    expect(limiter.size).to.equal(5);
  });

  it('holds at most maxEntries keys, however many tenants come', () => {
    const limiter = new LocalLimiter({ maxEntries: 1000 });
    const limit = { perSecond: 1, burst: 1 };
    for (let i = 0; i < 50_000; i++) {
      limiter.take(`k${i}`, limit, 0);
      if (limiter.size > 1000) expect.fail(`${limiter.size} entries after ${i + 1} keys`);
    }
    // The newest keys are still counted.
    expect(limiter.take('k49999', limit, 0).allowed).to.equal(false);
  });

  it('stays small without a sweep call when keys come and go', () => {
    const limiter = new LocalLimiter();
    const limit = { perSecond: 1000, burst: 1 };
    for (let i = 0; i < 100_000; i++) limiter.take(`k${i}`, limit, i * 2);
    expect(limiter.size).to.be.at.most(2048);
  });
});
