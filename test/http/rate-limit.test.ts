/**
 * Per-tenant rate limits through the real service (contract §11): real HTTP,
 * a real whitelist file, real redis-server processes for the shared count.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createGate } from '../../src/index.ts';
import { describeUrl } from '../../src/limit/redis-url.ts';
import { readyz, metricValue } from '../support/pg-gate.ts';
import {
  call,
  eventually,
  OIN_A,
  OIN_B,
  SECRET_B,
  signToken,
  startEmbedded,
  startGate,
  tokenFor,
  twoTenants,
  type Gate,
  type Response,
  type TenantSpec,
} from '../support/gate.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startUpstream, type Upstream } from '../support/upstream.ts';

type Limit = { perSecond?: unknown; burst?: unknown } | null | undefined;

/** The two test tenants with the given limits (undefined: none). */
function limited(a: Limit, b: Limit = undefined): TenantSpec[] {
  const [ta, tb] = twoTenants() as [TenantSpec, TenantSpec];
  if (a !== undefined) ta.rateLimit = a;
  if (b !== undefined) tb.rateLimit = b;
  return [ta, tb];
}

/** A valid request of the tenant, in forward-auth mode (OIN in the body, its own token). */
function valid(url: string, oin: string = OIN_A, extra: Parameters<typeof call>[3] = {}): Promise<Response> {
  return call(url, { oin }, tokenFor(oin), extra);
}

async function statuses(url: string, count: number, oin: string = OIN_A): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push((await valid(url, oin)).status);
  return out;
}

function expectTooMany(response: Response): void {
  expect(response.status).to.equal(429);
  expect(response.headers['content-type']).to.match(/^application\/json/);
  const body = response.json();
  expect(body).to.have.keys('error', 'message', 'requestId');
  expect(body['error']).to.equal('too_many_requests');
  expect(body['requestId']).to.equal(response.headers['x-request-id']);
  const retryAfter = Number(response.headers['retry-after']);
  expect(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${response.headers['retry-after']}`).to.equal(true);
  expect(response.headers['ratelimit-remaining']).to.equal('0');
}

describe('rate limits (contract §11), counted locally', function () {
  let gate: Gate;

  afterEach(async function () {
    await gate?.close();
  });

  it('admits the burst, answers 429 too_many_requests past it with Retry-After and RateLimit headers, and refills', async function () {
    gate = await startGate(limited({ perSecond: 1, burst: 3 }));
    const first = await valid(gate.url);
    expect(first.status).to.equal(200);
    expect(first.headers['ratelimit-limit']).to.equal('3');
    expect(first.headers['ratelimit-remaining']).to.equal('2');
    expect(first.headers['ratelimit-reset']).to.equal('1');
    expect(first.headers['retry-after']).to.equal(undefined);
    expect(await statuses(gate.url, 2)).to.deep.equal([200, 200]);
    const refused = await valid(gate.url);
    expectTooMany(refused);
    expect(refused.headers['ratelimit-limit']).to.equal('3');
    // The refusal is logged and counted with its precise reason.
    const line = gate.logs.last();
    expect(line).to.include({ outcome: 'refused', reason: 'rate_limited', status: 429, oin: OIN_A });
    const metrics = await (await fetch(new URL('/metrics', gate.adminUrl))).text();
    expect(metrics).to.match(/oingate_decisions_total\{outcome="refused",reason="rate_limited"\} 1\b/);
    // 1 per second: one more fits within about a second.
    const waited = await eventually(async () => void expect((await valid(gate.url)).status).to.equal(200), 5_000, 100);
    expect(waited).to.be.at.most(Number(refused.headers['retry-after']) * 1000 + 1000);
  });

  it('never forwards a rate-limited request in proxy mode', async function () {
    const upstream: Upstream = await startUpstream();
    try {
      gate = await startGate(limited({ perSecond: 1, burst: 2 }), { OINGATE_UPSTREAM: upstream.url });
      const first = await valid(gate.url);
      expect(first.status).to.equal(200);
      // The upstream's answer carries the tenant's RateLimit headers.
      expect(first.headers['ratelimit-limit']).to.equal('2');
      expect(first.headers['ratelimit-remaining']).to.equal('1');
      expect((await valid(gate.url)).status).to.equal(200);
      expect(upstream.requests).to.have.length(2);
      const refused = await valid(gate.url);
      expectTooMany(refused);
      expect(upstream.requests).to.have.length(2);
    } finally {
      await upstream.close();
    }
  });

  it('does not let an unauthenticated flood with the tenant\'s OIN spend its budget', async function () {
    // A tenant that may call only from 127.0.0.1, so 127.0.0.2 is a wrong address.
    const tenants = limited({ perSecond: 1, burst: 3 });
    tenants[0]!.cidrs = ['127.0.0.1/32'];
    gate = await startGate(tenants);
    const flood: Array<Promise<Response>> = [];
    for (let i = 0; i < 10; i++) {
      flood.push(call(gate.url, { oin: OIN_A }, undefined)); // no token
      flood.push(call(gate.url, { oin: OIN_A }, 'not.a.token')); // malformed
      flood.push(call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A }, SECRET_B))); // wrong key
      flood.push(call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_B }, SECRET_B, { algorithm: 'HS256', keyid: 'b1' }))); // B's token
      flood.push(valid(gate.url, OIN_A, { localAddress: '127.0.0.2' })); // valid token, wrong address
    }
    const answers = await Promise.all(flood);
    expect(answers.map((r) => r.status).filter((s) => s === 429)).to.deep.equal([]);
    expect(new Set(answers.map((r) => r.status))).to.deep.equal(new Set([401, 403]));
    // The whole burst is still there.
    expect(await statuses(gate.url, 3)).to.deep.equal([200, 200, 200]);
    expectTooMany(await valid(gate.url));
  });

  it('leaves other tenants untouched: with a limit of their own or none', async function () {
    gate = await startGate(limited({ perSecond: 1, burst: 2 }, { perSecond: 1, burst: 2 }));
    expect(await statuses(gate.url, 3, OIN_A)).to.deep.equal([200, 200, 429]);
    expect(await statuses(gate.url, 3, OIN_B)).to.deep.equal([200, 200, 429]);
    await gate.close();
    gate = await startGate(limited({ perSecond: 1, burst: 1 }));
    expect(await statuses(gate.url, 2, OIN_A)).to.deep.equal([200, 429]);
    const unlimited = await statuses(gate.url, 20, OIN_B);
    expect(unlimited.every((s) => s === 200)).to.equal(true);
    // A tenant without a limit gets no RateLimit headers.
    expect((await valid(gate.url, OIN_B)).headers['ratelimit-limit']).to.equal(undefined);
  });

  it('applies a limit changed in the file live, without resetting another tenant\'s count', async function () {
    gate = await startGate(limited({ perSecond: 1, burst: 2 }, { perSecond: 1, burst: 5 }));
    expect(await statuses(gate.url, 3, OIN_A)).to.deep.equal([200, 200, 429]);
    const spent = performance.now();
    expect(await statuses(gate.url, 6, OIN_B)).to.deep.equal([200, 200, 200, 200, 200, 429]);
    const before = gate.service.holder.current?.version;
    await gate.writeWhitelist(limited({ perSecond: 1, burst: 10 }, { perSecond: 1, burst: 5 }));
    await eventually(() => void expect(gate.service.holder.current?.version).to.not.equal(before));
    // A's new burst applies at once: its debt is kept, the window is larger.
    expect((await valid(gate.url, OIN_A)).status).to.equal(200);
    // B's count went on: a reset would leave 4 of 5; at 1 per second at most
    // the seconds since it was spent have come back.
    const b = await valid(gate.url, OIN_B);
    const refilled = Math.floor((performance.now() - spent) / 1000);
    if (b.status === 200) expect(Number(b.headers['ratelimit-remaining'])).to.be.at.most(refilled);
    else expectTooMany(b);
    // Removing the limit lifts it.
    await gate.writeWhitelist(limited(undefined, { perSecond: 1, burst: 5 }));
    await eventually(async () => void expect((await valid(gate.url, OIN_A)).headers['ratelimit-limit']).to.equal(undefined));
    expect((await statuses(gate.url, 15, OIN_A)).every((s) => s === 200)).to.equal(true);
  });

  it('refuses a whitelist file with a bad limit and keeps the last good one', async function () {
    gate = await startGate(limited({ perSecond: 1, burst: 1 }));
    const version = gate.service.holder.current?.version;
    for (const bad of [{ perSecond: 0 }, { perSecond: -1 }, { perSecond: 1.5 }, { perSecond: '10' }, { burst: 5 }, { perSecond: 1, burst: 0 }, { perSecond: 1, every: 2 }, { perSecond: 1e20 }, 7]) {
      await gate.writeWhitelist(limited(bad as Limit));
      await eventually(() => void expect(gate.service.holder.lastError ?? '').to.include('tenants[0].rateLimit'));
      expect(gate.service.holder.current?.version).to.equal(version);
      // The last good limit still holds.
      expect(await statuses(gate.url, 2, OIN_A)).to.include(429);
      await gate.writeWhitelist(limited({ perSecond: 1, burst: 1 }));
      await eventually(() => void expect(gate.service.holder.lastError).to.equal(null));
    }
  });
});

describe('rate limits shared through Redis (OINGATE_RATE_LIMIT_REDIS)', function () {
  this.timeout(60_000);
  let redis: TestRedis;
  const gates: Gate[] = [];

  before(async function () {
    redis = await startRedis();
  });

  after(async function () {
    await redis?.destroy();
  });

  beforeEach(async function () {
    // Each test starts with full buckets: a tenant's key outlives a test by up to its window.
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    await client.flushall();
    client.disconnect();
  });

  afterEach(async function () {
    for (const gate of gates.splice(0)) await gate.close();
  });

  async function instance(tenants: TenantSpec[], env: Record<string, string> = {}): Promise<Gate> {
    const gate = await startGate(tenants, { OINGATE_RATE_LIMIT_REDIS: redis.url, ...env });
    gates.push(gate);
    return gate;
  }

  it('lets two instances together admit the tenant\'s limit, not twice it, and says so in /readyz', async function () {
    // Distinct tenants per test: the Redis keys outlive a test by up to the window.
    const tenants = limited({ perSecond: 1, burst: 4 });
    const one = await instance(tenants);
    const two = await instance(tenants);
    const ready = await readyz(one.adminUrl);
    expect(ready.status).to.equal(200);
    expect((ready.body as unknown as Record<string, unknown>)['rateLimit']).to.deep.equal({ store: describeUrl(redis.url).shown, degraded: false, lastError: null });
    const started = performance.now();
    const answers: number[] = [];
    for (let i = 0; i < 5; i++) {
      answers.push((await valid(one.url)).status, (await valid(two.url)).status);
    }
    const seconds = (performance.now() - started) / 1000;
    const allowed = answers.filter((s) => s === 200).length;
    // 4 at once, plus at most one per second since; counting alone, each would have admitted 4.
    expect(allowed).to.be.within(4, 4 + Math.floor(seconds));
    expect(answers.filter((s) => s !== 200 && s !== 429)).to.deep.equal([]);
  });

  it('counts locally while Redis is killed, with no 5xx and no slow answer, says so in /readyz, the log and a metric, and returns by itself', async function () {
    const timeoutMs = 100;
    const tenants = limited({ perSecond: 1000, burst: 1000 }, { perSecond: 1, burst: 2 });
    const gate = await instance(tenants, { OINGATE_RATE_LIMIT_TIMEOUT_MS: String(timeoutMs) });
    const rateLimit = async () => ((await readyz(gate.adminUrl)).body as unknown as Record<string, { degraded: boolean; lastError: string | null; store: string }>)['rateLimit']!;
    expect((await rateLimit()).degraded).to.equal(false);

    let running = true;
    const seen: Array<{ status: number; ms: number }> = [];
    const load = (async () => {
      while (running) {
        const t0 = performance.now();
        const response = await valid(gate.url, OIN_A);
        seen.push({ status: response.status, ms: performance.now() - t0 });
      }
    })();
    try {
      await eventually(() => void expect(seen.length).to.be.above(20));
      await redis.kill();
      const killed = performance.now();
      await eventually(async () => {
        const status = await rateLimit();
        expect(status.degraded).to.equal(true);
        expect(status.lastError).to.be.a('string');
      });
      expect(await metricValue(gate.adminUrl, 'oingate_rate_limit_degraded')).to.equal(1);
      // Degraded is not "not ready": decisions go on.
      expect((await readyz(gate.adminUrl)).status).to.equal(200);
      expect(gate.logs.lines.some((l) => l['msg'] === 'rate limit Redis unavailable: counting locally')).to.equal(true);
      const during = seen.length;
      await eventually(() => void expect(seen.length).to.be.above(during + 20));
      // B's limit still holds while counted locally.
      expect(await statuses(gate.url, 3, OIN_B)).to.include(429);
      // Down for longer than the bound below: a request waiting for Redis would show.
      await eventually(() => void expect(performance.now() - killed).to.be.above(2_000), 5_000, 100);
      await redis.start();
      await eventually(async () => void expect((await rateLimit()).degraded).to.equal(false), 10_000, 50);
      expect(await metricValue(gate.adminUrl, 'oingate_rate_limit_degraded')).to.equal(0);
      expect(await metricValue(gate.adminUrl, 'oingate_rate_limit_fallback_decisions_total')).to.be.above(0);
      expect(gate.logs.lines.some((l) => l['msg'] === 'rate limits shared through Redis')).to.equal(true);
      const after = seen.length;
      await eventually(() => void expect(seen.length).to.be.above(after + 20));
    } finally {
      running = false;
      await load;
    }
    expect(seen.filter((s) => s.status !== 200)).to.deep.equal([]);
    // Generous: the command timeout plus a margin for a busy shared machine.
    const slowest = Math.max(...seen.map((s) => s.ms));
    expect(slowest, `slowest answer ${slowest.toFixed(1)} ms`).to.be.below(timeoutMs + 600);
  });

  it('shares one limit between an embedded createGate and a service when rateLimitRedis is given', async function () {
    const tenants = limited(undefined, { perSecond: 1, burst: 3 });
    const service = await instance(tenants);
    const embedded = await startEmbedded(tenants, { rateLimitRedis: redis.url });
    try {
      expect((embedded.gate.readiness() as unknown as Record<string, { degraded: boolean }>)['rateLimit']?.degraded).to.equal(false);
      const answers = [
        (await valid(embedded.url, OIN_B)).status,
        (await valid(service.url, OIN_B)).status,
        (await valid(embedded.url, OIN_B)).status,
      ];
      expect(answers).to.deep.equal([200, 200, 200]);
      const refused = await valid(embedded.url, OIN_B);
      expectTooMany(refused);
      // The API behind the middleware never saw the refused request.
      expect(embedded.hits).to.have.length(2);
      expect(embedded.logs.last()).to.include({ reason: 'rate_limited', status: 429 });
    } finally {
      await embedded.close();
    }
  });

  it('refuses a rateLimitRedis option that is not a redis URL, without echoing its password', async function () {
    // Refused while the options are read, before any store is opened.
    const error = await createGate({ store: 'file:does-not-exist.json', rateLimitRedis: 'http://user:hunter2secret@127.0.0.1:6379' }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error?.message).to.match(/^rateLimitRedis: /);
    expect(error?.message).to.not.include('hunter2secret');
  });
});
