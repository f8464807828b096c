/**
 * Throughput of a bare node:http server that answers 200 after one rate
 * limit decision (a limit set but never reached), against the same server
 * without one: a pessimistic bound on what the limiter costs the gate, whose
 * own work per request is several times a bare server's.
 *
 *   npx tsx test/limit/bench-http.ts [seconds per case, default 3] [rounds, default 3]
 *
 * The cases take turns, round after round, and the median of each is shown,
 * so that load from elsewhere on the machine hits them alike.
 * The server runs in a child process (this file with `serve`), the load
 * (autocannon, 32 connections) in this one. LIMIT_BENCH_PROFILE=redis (or
 * none, local) writes a CPU profile of that server to LIMIT_BENCH_PROFILE_DIR.
 */
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { runLoad, type LoadRequest } from '../bench/lib/load.ts';
import { freePort } from '../bench/lib/external.ts';
import { cpuSeconds } from '../bench/lib/proc.ts';
import { createRateLimiter } from '../../src/limit/limiter.ts';
import { startRedis } from '../support/redis.ts';

const LIMIT = { perSecond: 1_000_000, burst: 1_000_000 };
const OIN = '00000001234567890000';

async function serve(mode: string, port: number, redisUrl: string | undefined): Promise<void> {
  const limiter = mode === 'none' ? undefined : await createRateLimiter({ redisUrl: mode === 'redis' ? redisUrl : undefined });
  if (limiter && !(await limiter.ready(5000))) throw new Error('Redis did not answer');
  const server = createServer(async (_req, res) => {
    if (limiter) {
      const verdict = await limiter.take(OIN, LIMIT);
      if (!verdict.allowed) {
        res.writeHead(429).end();
        return;
      }
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  server.listen(port, '127.0.0.1', () => process.send?.('listening'));
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

interface Run {
  rps: number;
  /** Server CPU per request, µs: steadier than req/s on a shared machine. */
  cpuUs: number;
  /** Decisions per script call (shared case). */
  perCall?: number;
}

async function measure(mode: string, seconds: number, redisUrl: string): Promise<Run> {
  const port = await freePort();
  const profile = process.env['LIMIT_BENCH_PROFILE'] === mode ? ['--cpu-prof', '--cpu-prof-dir', process.env['LIMIT_BENCH_PROFILE_DIR'] ?? '.'] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', fileURLToPath(import.meta.url), 'serve', mode, String(port), redisUrl], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const request: LoadRequest = { method: 'GET', path: '/', headers: {}, body: '' };
  await runLoad(`http://127.0.0.1:${port}`, [request], 1); // warm-up
  const admin = new Redis(redisUrl);
  await admin.config('RESETSTAT');
  const cpuBefore = cpuSeconds(child.pid!);
  const result = await runLoad(`http://127.0.0.1:${port}`, [request], seconds);
  const cpu = cpuSeconds(child.pid!) - cpuBefore;
  child.kill();
  const calls = Number(/cmdstat_evalsha:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
  admin.disconnect();
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${mode}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.rps, cpuUs: (cpu * 1e6) / result.ok, ...(calls > 0 ? { perCall: result.ok / calls } : {}) };
}

if (process.argv[2] === 'serve') {
  await serve(process.argv[3] ?? 'none', Number(process.argv[4]), process.argv[5]);
} else {
  const seconds = Number(process.argv[2] ?? 3);
  const rounds = Number(process.argv[3] ?? 3);
  const redis = await startRedis();
  try {
    const runs: Record<string, Run[]> = { none: [], local: [], redis: [] };
    for (let round = 0; round < rounds; round++) {
      for (const mode of Object.keys(runs)) runs[mode]!.push(await measure(mode, seconds, redis.url));
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
    const rps = (mode: string) => median(runs[mode]!.map((r) => r.rps));
    const cpu = (mode: string) => median(runs[mode]!.map((r) => r.cpuUs));
    for (const [mode, list] of Object.entries(runs)) {
      console.log(`${mode.padEnd(6)} rounds: ${list.map((r) => `${Math.round(r.rps)} req/s ${r.cpuUs.toFixed(1)} µs${r.perCall ? ` ${r.perCall.toFixed(1)}/call` : ''}`).join(', ')}`);
    }
    const line = (name: string, mode: string) =>
      console.log(
        `${name.padEnd(22)} ${Math.round(rps(mode)).toString().padStart(7)} req/s  ${(rps(mode) / rps('none')).toFixed(2)}x` +
          `   ${cpu(mode).toFixed(1).padStart(6)} µs CPU/request (+${(cpu(mode) - cpu('none')).toFixed(1)})`,
      );
    line('no limit', 'none');
    line('limit, local', 'local');
    line('limit, shared (Redis)', 'redis');
  } finally {
    await redis.destroy();
  }
}
