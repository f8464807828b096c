/**
 * HTTP throughput: oingate in proxy mode, nginx, and the bare upstream
 * (direct); oingate in forward-auth mode, HAProxy doing forward-auth-like
 * checks in C, a bare node:http server and a bare Koa app; both oingate
 * modes with info-level decision logging on (to /dev/null); and, with
 * BENCH_BASELINE_REF, both oingate modes from that commit. Same load for
 * all, in alternating rounds after a warm-up round.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BaselineTree, type RunningServer } from './lib/baseline.ts';
import { BenchChild, currentPinning, onBenchExit } from './lib/children.ts';
import { bodyFor, makeTenants, tokenFor, writeWhitelist } from './lib/fixtures.ts';
import { findHaproxy, startHaproxy } from './lib/haproxy.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { benchRequest, CONNECTIONS, runLoad, type LoadRequest, type LoadResult } from './lib/load.ts';
import { ensureNginx, startNginx } from './lib/nginx.ts';
import { summariseDirectory, type ProfileSummary } from './lib/profile.ts';
import { checkRefusals } from './lib/refusals.ts';
import { fixed, median, mib, table, thousands } from './lib/stats.ts';

/** Also the order of each round: a baseline runs right after its current-tree twin, so drift on the machine hits both alike. */
export const TARGET_KEYS = [
  'proxy',
  'proxy-baseline',
  'nginx',
  'direct',
  'forward-auth',
  'forward-auth-limit-local',
  'forward-auth-limit-redis',
  'forward-auth-baseline',
  'haproxy',
  'bare',
  'koa',
  'proxy-info-log',
  'forward-auth-info-log',
] as const;
export type TargetKey = (typeof TARGET_KEYS)[number];
const ORDER: readonly TargetKey[] = TARGET_KEYS;
/** Targets that need the upstream. */
const PROXIED: readonly TargetKey[] = ['proxy', 'nginx', 'direct', 'proxy-info-log', 'proxy-baseline'];
export const BASELINE: readonly TargetKey[] = ['forward-auth-baseline', 'proxy-baseline'];
/** Targets that must refuse a wrong token (checked before measuring). */
const GATES: ReadonlySet<TargetKey> = new Set([
  'proxy',
  'forward-auth',
  'haproxy',
  'proxy-info-log',
  'forward-auth-info-log',
  'forward-auth-limit-local',
  'forward-auth-limit-redis',
  ...BASELINE,
]);
/** forward-auth with the bench tenant's rate limit set far above the load (set, never reached). */
const LIMITED: ReadonlySet<TargetKey> = new Set(['forward-auth-limit-local', 'forward-auth-limit-redis']);
/** The limit of those targets: high enough that no request of the load is refused. */
export const UNREACHED_LIMIT = { perSecond: 1_000_000, burst: 1_000_000 } as const;

const LABELS: Record<TargetKey, string> = {
  proxy: 'oingate proxy -> upstream',
  nginx: 'nginx allow/deny -> upstream',
  direct: 'upstream direct (no proxy)',
  'forward-auth': 'oingate forward-auth',
  haproxy: 'haproxy jwt_verify 200',
  bare: 'bare node 200',
  koa: 'bare Koa (koa-body) 200',
  'proxy-info-log': 'oingate proxy, info log',
  'forward-auth-info-log': 'oingate forward-auth, info log',
  'forward-auth-baseline': 'BASELINE oingate forward-auth',
  'forward-auth-limit-local': 'oingate forward-auth, limit (local)',
  'forward-auth-limit-redis': 'oingate forward-auth, limit (Redis)',
  'proxy-baseline': 'BASELINE oingate proxy -> upstream',
};

export interface HttpOptions {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly rounds: number;
  /** When set, oingate children run with --cpu-prof into subdirectories of it. */
  readonly profileRoot: string | undefined;
  /** Which targets to start and measure. */
  readonly targets: ReadonlySet<TargetKey>;
  /** A git ref whose oingate runs as the baseline rows. */
  readonly baselineRef: string | undefined;
}

interface Target {
  readonly key: TargetKey;
  readonly label: string;
  readonly url: string;
  readonly serverCpu: () => number;
  readonly upstreamCpu?: () => number;
  readonly rss: () => number;
}

function childServer(child: BenchChild): RunningServer & { readonly adminUrl?: string } {
  return {
    url: child.ready.url,
    ...(child.ready.adminUrl !== undefined ? { adminUrl: child.ready.adminUrl } : {}),
    cpuSeconds: () => child.cpuSeconds(),
    rss: () => child.memory()?.rss ?? NaN,
    stop: () => child.stop(),
  };
}

export interface TargetFigures {
  readonly key: TargetKey;
  readonly label: string;
  readonly rps: number;
  /** The best round: on a shared machine the least disturbed one. */
  readonly bestRps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly serverCpu: number;
  readonly upstreamCpu: number | undefined;
  /** CPU time per 2xx response, server and upstream, in µs: steadier than req/s on a shared machine. */
  readonly serverUsPerRequest: number;
  readonly upstreamUsPerRequest: number | undefined;
  readonly loadgenCpu: number;
  readonly failed: number;
  readonly rss: number;
  readonly rounds: readonly LoadResult[];
}

export interface HttpBench {
  readonly figures: ReadonlyMap<TargetKey, TargetFigures>;
  readonly skipped: ReadonlyMap<TargetKey, string>;
  /** The refusal check of each gate, e.g. "right token 200, wrong secret 401, ...". */
  readonly refusals: ReadonlyMap<TargetKey, string>;
  /** Which nginx / HAProxy / baseline ran. */
  readonly notes: readonly string[];
  readonly baselineLabel: string | undefined;
  readonly profiles: ReadonlyArray<{ name: string; summaries: ProfileSummary[] }>;
  readonly text: string;
}


export async function benchHttp(options: HttpOptions, log: (line: string) => void): Promise<HttpBench> {
  const dir = await mkdtemp(join(tmpdir(), 'oingate-bench-http-'));
  const forgetDir = onBenchExit(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'whitelist.json');
  const tenants = makeTenants(10, new Set([0]));
  await writeWhitelist(file, tenants);
  const tenant = tenants[0]!;
  // The same whitelist with the bench tenant's rate limit set (and never reached).
  const limitedFile = join(dir, 'whitelist-limited.json');
  await writeWhitelist(limitedFile, tenants.map((t, i) => (i === 0 ? ({ ...t, rateLimit: UNREACHED_LIMIT } as typeof t) : t)));
  let redis: TestRedis | undefined;
  let redisTargetAdmin: string | undefined;
  const request: LoadRequest = benchRequest(bodyFor(tenant.oin), tokenFor(tenant));
  const wanted = (key: TargetKey) => options.targets.has(key);

  const servers: RunningServer[] = [];
  const fds: number[] = [];
  const skipped = new Map<TargetKey, string>();
  const refusals = new Map<TargetKey, string>();
  const profiled: Array<{ name: string; dir: string }> = [];
  let baseline: BaselineTree | undefined;
  const notes: string[] = [];

  const track = <T extends RunningServer>(server: T): T => {
    servers.push(server);
    return server;
  };
  const logFile = (name: string, logLevel: 'warn' | 'info') => {
    const fd = openSync(logLevel === 'info' ? '/dev/null' : join(dir, `${name}.log`), 'a');
    fds.push(fd);
    return fd;
  };
  const oingateEnv = (logLevel: 'warn' | 'info', upstream: RunningServer | undefined, extra: Record<string, string> = {}): Record<string, string> => ({
    OINGATE_LISTEN: '127.0.0.1:0',
    OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
    OINGATE_STORE: `file:${file}`,
    OINGATE_LOG_LEVEL: logLevel,
    ...(upstream ? { OINGATE_UPSTREAM: upstream.url } : {}),
    ...extra,
  });
  const oingate = async (name: string, logLevel: 'warn' | 'info', upstream: RunningServer | undefined, extra: Record<string, string> = {}) => {
    const profileDir = options.profileRoot ? join(options.profileRoot, name) : undefined;
    if (profileDir) profiled.push({ name, dir: profileDir });
    return track(
      childServer(
        await BenchChild.start({
          name,
          script: 'test/bench/servers/oingate.ts',
          stdout: logFile(name, logLevel),
          ...(profileDir ? { profileDir } : {}),
          env: oingateEnv(logLevel, upstream, extra),
        }),
      ),
    );
  };
  /** Starts a target's server unless it is not wanted; a failure to start skips that target only. */
  const maybe = async <T>(key: TargetKey, start: () => Promise<T>): Promise<T | undefined> => {
    if (!wanted(key)) return undefined;
    try {
      return await start();
    } catch (error) {
      skipped.set(key, `failed to start: ${(error as Error).message.split('\n')[0]}`);
      return undefined;
    }
  };

  try {
    log(`http: starting ${[...options.targets].join(', ')} ...`);
    const needsUpstream = PROXIED.some(wanted);
    const upstream = needsUpstream
      ? track(childServer(await BenchChild.start({ name: 'upstream', script: 'test/bench/servers/upstream.ts' })))
      : undefined;
    const started = new Map<TargetKey, { server: RunningServer; behind?: RunningServer }>();
    const put = (key: TargetKey, server: RunningServer | undefined, behind?: RunningServer) => {
      if (server) started.set(key, behind ? { server, behind } : { server });
    };

    put('proxy', await maybe('proxy', () => oingate('oingate-proxy', 'warn', upstream)), upstream);
    if (upstream) put('direct', wanted('direct') ? upstream : undefined);
    put('forward-auth', await maybe('forward-auth', () => oingate('oingate-forward-auth', 'warn', undefined)));
    put('bare', await maybe('bare', async () => track(childServer(await BenchChild.start({ name: 'bare-node', script: 'test/bench/servers/bare.ts' })))));
    put('koa', await maybe('koa', async () => track(childServer(await BenchChild.start({ name: 'bare-koa', script: 'test/bench/servers/koa.ts' })))));
    put('proxy-info-log', await maybe('proxy-info-log', () => oingate('oingate-proxy-info-log', 'info', upstream)), upstream);
    put('forward-auth-info-log', await maybe('forward-auth-info-log', () => oingate('oingate-forward-auth-info-log', 'info', undefined)));
    put('forward-auth-limit-local', await maybe('forward-auth-limit-local', () => oingate('oingate-forward-auth-limit-local', 'warn', undefined, { OINGATE_STORE: `file:${limitedFile}` })));
    put(
      'forward-auth-limit-redis',
      await maybe('forward-auth-limit-redis', async () => {
        redis = await startBenchRedis(notes);
        const server = await oingate('oingate-forward-auth-limit-redis', 'warn', undefined, { OINGATE_STORE: `file:${limitedFile}`, OINGATE_RATE_LIMIT_REDIS: redis.url });
        redisTargetAdmin = server.adminUrl;
        return server;
      }),
    );

    if (wanted('nginx')) {
      const found = ensureNginx(log);
      notes.push(`nginx: ${found.note}`);
      if (found.path) {
        const path = found.path;
        put('nginx', await maybe('nginx', async () => track(await startNginx(path, join(dir, 'nginx'), upstream!.url))), upstream);
      } else {
        skipped.set('nginx', `skipped: nginx not installed (${found.note})`);
      }
    }
    if (wanted('haproxy')) {
      const found = findHaproxy();
      notes.push(`haproxy: ${found.note}`);
      if (found.path) {
        const path = found.path;
        put('haproxy', await maybe('haproxy', async () => track(await startHaproxy(path, join(dir, 'haproxy'), tenant.keys[0]!.secret, tenant.cidrs[0]!))));
      } else {
        skipped.set('haproxy', `skipped: haproxy not installed (${found.note})`);
      }
    }

    if (options.baselineRef !== undefined && BASELINE.some(wanted)) {
      baseline = await BaselineTree.create(options.baselineRef);
      notes.push(`baseline: ${baseline.label}, started via ${baseline.entry}`);
      log(`http: baseline ${baseline.label} (started via ${baseline.entry})`);
      const tree = baseline;
      const fromTree = (name: string, up: RunningServer | undefined) => async () =>
        track(await tree.start(name, oingateEnv('warn', up), logFile(name, 'warn')));
      put('forward-auth-baseline', await maybe('forward-auth-baseline', fromTree('baseline-forward-auth', undefined)));
      put('proxy-baseline', await maybe('proxy-baseline', fromTree('baseline-proxy', upstream)), upstream);
    }

    const all: Target[] = [];
    for (const key of ORDER) {
      const entry = started.get(key);
      if (!entry) continue;
      const { server, behind } = entry;
      all.push({
        key,
        label: LABELS[key],
        url: server.url,
        serverCpu: () => server.cpuSeconds(),
        ...(behind ? { upstreamCpu: () => behind.cpuSeconds() } : {}),
        rss: () => server.rss(),
      });
    }

    // One request each: a target that does not answer 200 is reported, not measured;
    // a gate must also refuse a wrong token before its figures mean anything.
    const targets: Target[] = [];
    for (const target of all) {
      try {
        if (GATES.has(target.key)) {
          let check = await checkRefusals(target.url, request, tenant);
          if (LIMITED.has(target.key)) {
            const limit = await limitInForce(target.url, request, target.key === 'forward-auth-limit-redis' ? redisTargetAdmin : undefined);
            check = { ok: check.ok && limit.ok, line: `${check.line}; ${limit.line}` };
          }
          refusals.set(target.key, check.line);
          log(`http: refusal check ${target.label}: ${check.line}${check.ok ? '' : '  -> NOT MEASURED'}`);
          if (!check.ok) {
            skipped.set(target.key, `refusal check failed: ${check.line}`);
            continue;
          }
          targets.push(target);
          continue;
        }
        const response = await fetch(new URL(request.path, target.url), {
          method: 'POST',
          headers: request.headers,
          body: request.body,
        });
        const text = await response.text();
        if (response.status !== 200) {
          skipped.set(target.key, `sanity request answered ${response.status}: ${text.slice(0, 200)}`);
          continue;
        }
        targets.push(target);
      } catch (error) {
        skipped.set(target.key, `sanity request failed: ${(error as Error).message}`);
      }
    }

    log(`http: warm-up, ${options.warmupSeconds} s per target ...`);
    for (const target of targets) await runLoad(target.url, [request], options.warmupSeconds);

    const results = new Map<
      TargetKey,
      Array<{ load: LoadResult; server: number; upstream: number | undefined; serverUs: number; upstreamUs: number | undefined }>
    >();
    for (let round = 1; round <= options.rounds; round++) {
      // Every other round in reverse, so no target always follows the same one (twins stay adjacent).
      for (const target of round % 2 === 1 ? targets : [...targets].reverse()) {
        const wall0 = performance.now();
        const server0 = target.serverCpu();
        const upstream0 = target.upstreamCpu?.();
        const load = await runLoad(target.url, [request], options.seconds);
        const wall = (performance.now() - wall0) / 1000;
        const serverSeconds = target.serverCpu() - server0;
        const upstreamSeconds = upstream0 === undefined ? undefined : target.upstreamCpu!() - upstream0;
        const list = results.get(target.key) ?? [];
        list.push({
          load,
          server: serverSeconds / wall,
          upstream: upstreamSeconds === undefined ? undefined : upstreamSeconds / wall,
          serverUs: (serverSeconds * 1e6) / load.ok,
          upstreamUs: upstreamSeconds === undefined ? undefined : (upstreamSeconds * 1e6) / load.ok,
        });
        results.set(target.key, list);
        log(
          `http: round ${round}/${options.rounds} ${target.label.padEnd(31)} ${thousands(load.rps).padStart(7)} req/s` +
            `  p50 ${fixed(load.p50Ms, 2)} ms  p99 ${fixed(load.p99Ms, 2)} ms` +
            (load.non2xx + load.errors > 0 ? `  FAILED ${load.non2xx} non-2xx, ${load.errors} errors ${JSON.stringify(load.statusCodes)}` : ''),
        );
      }
    }

    const figures = new Map<TargetKey, TargetFigures>();
    for (const target of targets) {
      const list = results.get(target.key) ?? [];
      const upstreamValues = list.map((r) => r.upstream).filter((v): v is number => v !== undefined);
      const upstreamUs = list.map((r) => r.upstreamUs).filter((v): v is number => v !== undefined);
      figures.set(target.key, {
        key: target.key,
        label: target.label,
        rps: median(list.map((r) => r.load.rps)),
        bestRps: Math.max(...list.map((r) => r.load.rps)),
        p50Ms: median(list.map((r) => r.load.p50Ms)),
        p99Ms: median(list.map((r) => r.load.p99Ms)),
        serverCpu: median(list.map((r) => r.server)),
        upstreamCpu: upstreamValues.length ? median(upstreamValues) : undefined,
        serverUsPerRequest: median(list.map((r) => r.serverUs)),
        upstreamUsPerRequest: upstreamUs.length ? median(upstreamUs) : undefined,
        loadgenCpu: median(list.map((r) => r.load.loadgenCpu)),
        failed: list.reduce((sum, r) => sum + r.load.non2xx + r.load.errors, 0),
        rss: target.rss(),
        rounds: list.map((r) => r.load),
      });
    }

    const rows: string[][] = [
      ['target', 'req/s', 'best', 'p50 ms', 'p99 ms', 'server CPU', 'µs/req', 'upstream CPU', 'µs/req', 'loadgen CPU', 'failed', 'RSS', 'req/s per round'],
    ];
    for (const key of ORDER) {
      const f = figures.get(key);
      if (!f) {
        if (wanted(key)) rows.push([key, skipped.get(key) ?? 'not measured']);
        continue;
      }
      rows.push([
        f.label,
        thousands(f.rps),
        thousands(f.bestRps),
        fixed(f.p50Ms, 2),
        fixed(f.p99Ms, 2),
        `${fixed(f.serverCpu * 100, 0)}%`,
        fixed(f.serverUsPerRequest, 0),
        f.upstreamCpu === undefined ? '' : `${fixed(f.upstreamCpu * 100, 0)}%`,
        f.upstreamUsPerRequest === undefined ? '' : fixed(f.upstreamUsPerRequest, 0),
        `${fixed(f.loadgenCpu * 100, 0)}%`,
        String(f.failed),
        mib(f.rss),
        f.rounds.map((r) => thousands(r.rps)).join(' / '),
      ]);
    }
    const text = [
      `HTTP load: autocannon, ${CONNECTIONS} connections, POST ${request.path} with a ${Buffer.byteLength(request.body)}-byte JSON body and a valid HS256 bearer token;`,
      `${options.rounds} alternating rounds of ${options.seconds} s after a ${options.warmupSeconds} s warm-up; medians over rounds ("best": the best round).`,
      'oingate runs at OINGATE_LOG_LEVEL=warn (info-level decision logging OFF) except the two "info log" rows (decision log lines to /dev/null).',
      'oingate (this tree and any baseline) runs from its TypeScript sources through tsx, as `npm start` and `oingate serve` in a checkout do; an installed package runs the compiled dist/.',
      'nginx: 1 worker, access_log off, allow 127.0.0.0/8; deny all; keepalive 64 to the upstream.',
      'HAProxy: 1 thread, no upstream: OIN from the buffered body (json_query), acl src, jwt_verify HS256 with one literal secret, alg, exp,',
      '  token oin claim == body OIN; answers 200 itself (forward-auth-like). Gates are checked to refuse a wrong token before they are measured.',
      ...(baseline ? [`baseline rows: oingate from ${baseline.label} (via ${baseline.entry}), same whitelist and load.`] : []),
      'CPU columns: share of one core during the round; µs/req: CPU time per 2xx response (less sensitive than req/s to other work on the machine).',
      '',
      table(rows, new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])),
    ].join('\n');

    if (redisTargetAdmin !== undefined && figures.has('forward-auth-limit-redis')) {
      notes.push(`forward-auth-limit-redis after the rounds: ${await sharedState(redisTargetAdmin)}`);
    }
    for (const server of servers.splice(0)) await server.stop();
    await redis?.destroy();

    const profiles: Array<{ name: string; summaries: ProfileSummary[] }> = [];
    for (const { name, dir: profileDir } of profiled) profiles.push({ name, summaries: await summariseDirectory(profileDir) });

    return { figures, skipped, refusals, notes, baselineLabel: baseline?.label, profiles, text };
  } finally {
    for (const server of servers) await server.stop().catch(() => undefined);
    await redis?.destroy().catch(() => undefined);
    await baseline?.remove();
    for (const fd of fds) closeSync(fd);
    await rm(dir, { recursive: true, force: true });
    forgetDir();
  }
}

/**
 * A redis-server for the shared-limit targets. Pinned to every CPU the
 * servers and the load generator use: it is neither, and on one core with
 * the gate it would be charged to the gate.
 */
export async function startBenchRedis(notes: string[]): Promise<TestRedis> {
  const redis = await startRedis();
  const { pinning } = currentPinning();
  if (pinning && redis.pid !== undefined) {
    const cpus = `${pinning.loadgen},${pinning.server}`;
    const pinned = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(redis.pid)], { encoding: 'utf8' });
    notes.push(`redis: ${redis.url}${pinned.status === 0 ? `, on CPUs ${cpus} (shared with the load generator and the servers)` : ', not pinned'}`);
  } else {
    notes.push(`redis: ${redis.url}, not pinned`);
  }
  return redis;
}

/** Whether the instance counts through Redis, and how many decisions it counted locally so far. */
async function sharedState(adminUrl: string): Promise<string> {
  const ready = (await (await fetch(new URL('/readyz', adminUrl))).json()) as { rateLimit?: { degraded: boolean } };
  const metrics = await (await fetch(new URL('/metrics', adminUrl))).text();
  const fallback = /^oingate_rate_limit_fallback_decisions_total (\S+)$/m.exec(metrics)?.[1] ?? '?';
  return `shared through Redis ${ready.rateLimit?.degraded === false ? 'yes' : 'NO'}, decisions counted locally ${fallback}`;
}

/**
 * The right request must carry RateLimit headers: proof that the limit is
 * set (and not reached); with `adminUrl`, also that it is counted in Redis.
 */
async function limitInForce(url: string, request: LoadRequest, adminUrl?: string): Promise<{ ok: boolean; line: string }> {
  const response = await fetch(new URL(request.path, url), { method: request.method, headers: request.headers, body: request.body });
  await response.arrayBuffer();
  const limit = response.headers.get('ratelimit-limit');
  let ok = response.status === 200 && limit === String(UNREACHED_LIMIT.burst);
  let line = `limit in force: RateLimit-Limit ${limit ?? 'missing'}`;
  if (adminUrl !== undefined) {
    const shared = await sharedState(adminUrl);
    ok &&= shared.includes('Redis yes');
    line += `; ${shared}`;
  }
  return { ok, line: `${line}${ok ? '' : ' (WRONG)'}` };
}
