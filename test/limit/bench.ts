/**
 * What one rate limit decision costs: local GCRA, and the shared Redis
 * script one at a time and with many decisions in flight (as under load):
 * one call per decision, with and without ioredis auto-pipelining, and one
 * call per event-loop turn (batched). Starts its own redis-server.
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

async function benchLocal(): Promise<void> {
  const local = new LocalLimiter();
  let ops = 0;
  const cpu0 = cpuMs();
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    for (let i = 0; i < 10_000; i++) local.take(tenants[i % 100]!, limit, performance.now());
    ops += 10_000;
  }
  report('local take()', ops, performance.now() - started, cpuMs() - cpu0);
  const facade = await createRateLimiter();
  ops = 0;
  const cpu1 = cpuMs();
  const started1 = performance.now();
  while (performance.now() - started1 < seconds * 1000) {
    for (let i = 0; i < 10_000; i++) facade.take(tenants[i % 100]!, limit);
    ops += 10_000;
  }
  report('facade take(), no Redis', ops, performance.now() - started1, cpuMs() - cpu1);
}

/** Redis's own time per decision in the last case, from INFO commandstats (reset before each case). */
async function redisCost(admin: Redis, decisions: number): Promise<string> {
  const stats = await admin.info('commandstats');
  const line = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(stats);
  await admin.config('RESETSTAT');
  if (!line) return 'no evalsha calls';
  const calls = Number(line[1]);
  const usec = Number(line[2]);
  return `redis-server ${(usec / decisions).toFixed(2)} µs/decision, ${(decisions / calls).toFixed(1)} decisions/call`;
}

async function benchShared(url: string, admin: Redis, inFlight: number, batch: boolean, autoPipelining = false): Promise<void> {
  const limiter = new RedisLimiter({ url, commandTimeoutMs: 1000, batch, enableAutoPipelining: autoPipelining });
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
  report(`redis, ${inFlight} in flight, ${batch ? 'batched' : 'one call each'}${autoPipelining ? ', auto-pipelined' : ''}`, ops, wall, cpu);
  console.log(`${''.padEnd(44)} p50 ${p(0.5)} ms  p99 ${p(0.99)} ms  fallbacks=${limiter.stats().fallbackDecisions}  ${await redisCost(admin, ops)}`);
  await limiter.close();
}

await benchLocal();
const redis = await startRedis();
const admin = new Redis(redis.url);
try {
  for (const inFlight of [1, 16, 64]) {
    await benchShared(redis.url, admin, inFlight, false);
    if (inFlight > 1) await benchShared(redis.url, admin, inFlight, false, true);
    await benchShared(redis.url, admin, inFlight, true);
  }
} finally {
  admin.disconnect();
  await redis.destroy();
}
