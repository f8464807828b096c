/**
 * What one rate limit decision costs: local GCRA, and the shared Redis
 * script one at a time and with many decisions in flight (as under load),
 * with and without ioredis auto-pipelining. Starts its own redis-server.
 *
 *   npx tsx test/limit/bench.ts [seconds per case, default 2]
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { LocalLimiter } from '../../src/limit/local.ts';
import { createRateLimiter } from '../../src/limit/limiter.ts';
import { RedisLimiter } from '../../src/limit/redis.ts';
import { startRedis } from '../support/redis.ts';

const seconds = Number(process.argv[2] ?? 2);
const limit = { perSecond: 1_000_000, burst: 1_000_000 };
const tenants = Array.from({ length: 100 }, (_, i) => String(i).padStart(20, '0'));

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function report(name: string, ops: number, wallMs: number, cpu: number): void {
  const perSecond = Math.round((ops / wallMs) * 1000);
  console.log(`${name.padEnd(44)} ${String(perSecond).padStart(9)} ops/s   ${((cpu * 1000) / ops).toFixed(2).padStart(6)} µs CPU/op`);
}

function benchLocal(): void {
  const local = new LocalLimiter();
  let ops = 0;
  const cpu0 = cpuMs();
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    for (let i = 0; i < 10_000; i++) local.take(tenants[i % 100]!, limit, performance.now());
    ops += 10_000;
  }
  report('local take()', ops, performance.now() - started, cpuMs() - cpu0);
  const facade = createRateLimiter();
  ops = 0;
  const cpu1 = cpuMs();
  const started1 = performance.now();
  while (performance.now() - started1 < seconds * 1000) {
    for (let i = 0; i < 10_000; i++) facade.take(tenants[i % 100]!, limit);
    ops += 10_000;
  }
  report('facade take(), no Redis', ops, performance.now() - started1, cpuMs() - cpu1);
}

async function benchShared(url: string, inFlight: number, autoPipelining: boolean): Promise<void> {
  const limiter = new RedisLimiter({ url, commandTimeoutMs: 1000, enableAutoPipelining: autoPipelining });
  if (!(await limiter.ready(5000))) throw new Error('Redis did not answer');
  let ops = 0;
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const cpu0 = cpuMs();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, worker) => {
      for (let i = worker; performance.now() < deadline; i += inFlight) {
        const t = performance.now();
        await limiter.take(`oingate:rl:${tenants[i % 100]}`, limit, t);
        if (ops % 16 === 0) latencies.push(performance.now() - t);
        ops++;
      }
    }),
  );
  const wall = performance.now() - started;
  const cpu = cpuMs() - cpu0;
  latencies.sort((a, b) => a - b);
  const p = (q: number) => (latencies[Math.floor(latencies.length * q)] ?? 0).toFixed(2);
  report(`redis script, ${inFlight} in flight${autoPipelining ? ', auto-pipelined' : ''}`, ops, wall, cpu);
  console.log(`${''.padEnd(44)} p50 ${p(0.5)} ms  p99 ${p(0.99)} ms  degraded=${limiter.status().degraded} fallbacks=${limiter.stats().fallbackDecisions}`);
  await limiter.close();
}

benchLocal();
const redis = await startRedis();
try {
  for (const inFlight of [1, 16, 64]) {
    await benchShared(redis.url, inFlight, false);
    if (inFlight > 1) await benchShared(redis.url, inFlight, true);
  }
  // Redis's own cost per decision: what bounds all instances together.
  const client = new Redis(redis.url);
  const stats = await client.info('commandstats');
  for (const line of stats.split('\n')) if (/^cmdstat_(evalsha|eval):/.test(line)) console.log(`redis-server ${line.trim()}`);
  client.disconnect();
} finally {
  await redis.destroy();
}
