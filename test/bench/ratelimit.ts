/**
 * Rate-limit accuracy (issue 13): two oingate instances sharing one limit
 * through Redis, each offered the tenant's full rate for 3 s (together twice
 * the limit), paced evenly. Ideal: burst + perSecond x 3 admitted in all.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchRedis } from './http.ts';
import { BenchChild, onBenchExit } from './lib/children.ts';
import { bodyFor, makeTenants, tokenFor, writeWhitelist } from './lib/fixtures.ts';
import { benchRequest } from './lib/load.ts';

export const ACCURACY_LIMIT = { perSecond: 100, burst: 50 } as const;
export const ACCURACY_SECONDS = 3;
const INSTANCES = 2;

export interface AccuracyBench {
  readonly admitted: number;
  readonly refused: number;
  /** Answers other than 200 and 429 (there should be none). */
  readonly other: number;
  readonly expected: number;
  /** (admitted - expected) / expected. */
  readonly deviation: number;
  readonly seconds: number;
  /** Decisions counted locally because Redis was unavailable or slow (0 when shared throughout). */
  readonly fallbackDecisions: number;
  readonly notes: readonly string[];
}

async function metric(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', adminUrl))).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

async function degraded(adminUrl: string): Promise<boolean | undefined> {
  const body = (await (await fetch(new URL('/readyz', adminUrl))).json()) as { rateLimit?: { degraded: boolean } };
  return body.rateLimit?.degraded;
}

export async function benchRateLimitAccuracy(log: (line: string) => void): Promise<AccuracyBench> {
  const dir = await mkdtemp(join(tmpdir(), 'oingate-bench-ratelimit-'));
  const forgetDir = onBenchExit(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'whitelist.json');
  const tenants = makeTenants(10, new Set([0]));
  await writeWhitelist(file, tenants.map((t, i) => (i === 0 ? ({ ...t, rateLimit: ACCURACY_LIMIT } as typeof t) : t)));
  const tenant = tenants[0]!;
  const request = benchRequest(bodyFor(tenant.oin), tokenFor(tenant));
  const notes: string[] = [];
  const redis = await startBenchRedis(notes);
  const children: BenchChild[] = [];
  try {
    for (let i = 0; i < INSTANCES; i++) {
      children.push(
        await BenchChild.start({
          name: `oingate-ratelimit-${i + 1}`,
          script: 'test/bench/servers/oingate.ts',
          env: {
            OINGATE_LISTEN: '127.0.0.1:0',
            OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
            OINGATE_STORE: `file:${file}`,
            OINGATE_LOG_LEVEL: 'warn',
            OINGATE_RATE_LIMIT_REDIS: redis.url,
          },
        }),
      );
    }
    for (const child of children) {
      const deadline = Date.now() + 5_000;
      while ((await degraded(child.ready.adminUrl!)) !== false) {
        if (Date.now() > deadline) throw new Error(`${child.name}: rate limits not shared through Redis after 5 s`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const before = await Promise.all(children.map((c) => metric(c.ready.adminUrl!, 'oingate_rate_limit_fallback_decisions_total')));
    log(`ratelimit: ${INSTANCES} instances, limit ${ACCURACY_LIMIT.perSecond}/s burst ${ACCURACY_LIMIT.burst}, each offered ${ACCURACY_LIMIT.perSecond}/s for ${ACCURACY_SECONDS} s ...`);

    const counts = { admitted: 0, refused: 0, other: 0 };
    const perInstance = ACCURACY_LIMIT.perSecond * ACCURACY_SECONDS;
    const intervalMs = 1000 / ACCURACY_LIMIT.perSecond;
    const started = performance.now();
    const sent: Array<Promise<void>> = [];
    // Paced by the clock, not by answers: a slow answer does not slow the offer.
    for (let n = 0; n < perInstance; n++) {
      const due = started + n * intervalMs;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      for (const child of children) {
        sent.push(
          fetch(new URL(request.path, child.ready.url), { method: 'POST', headers: request.headers, body: request.body }).then(
            async (response) => {
              await response.arrayBuffer();
              if (response.status === 200) counts.admitted++;
              else if (response.status === 429) counts.refused++;
              else counts.other++;
            },
            () => {
              counts.other++;
            },
          ),
        );
      }
    }
    await Promise.all(sent);
    const seconds = (performance.now() - started) / 1000;
    const after = await Promise.all(children.map((c) => metric(c.ready.adminUrl!, 'oingate_rate_limit_fallback_decisions_total')));
    const expected = ACCURACY_LIMIT.burst + ACCURACY_LIMIT.perSecond * ACCURACY_SECONDS;
    return {
      ...counts,
      expected,
      deviation: (counts.admitted - expected) / expected,
      seconds,
      fallbackDecisions: after.reduce((sum, v, i) => sum + v - before[i]!, 0),
      notes,
    };
  } finally {
    for (const child of children) await child.stop().catch(() => undefined);
    await redis.destroy();
    await rm(dir, { recursive: true, force: true });
    forgetDir();
  }
}
