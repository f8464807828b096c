/**
 * HTTP throughput: oingate in proxy mode, nginx, and the bare upstream
 * (direct); oingate in forward-auth mode and a bare Node server; plus both
 * oingate modes with info-level decision logging on (to /dev/null). Same
 * load for all, in alternating rounds after a warm-up round.
 */
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchChild } from './lib/children.ts';
import { bodyFor, makeTenants, tokenFor, writeWhitelist } from './lib/fixtures.ts';
import { benchRequest, CONNECTIONS, runLoad, type LoadRequest, type LoadResult } from './lib/load.ts';
import { ensureNginx, Nginx } from './lib/nginx.ts';
import { summariseDirectory, type ProfileSummary } from './lib/profile.ts';
import { fixed, median, mib, table, thousands } from './lib/stats.ts';

export interface HttpOptions {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly rounds: number;
  /** When set, oingate children run with --cpu-prof into subdirectories of it. */
  readonly profileRoot: string | undefined;
}

export type TargetKey = 'proxy' | 'nginx' | 'direct' | 'forward-auth' | 'bare' | 'proxy-info-log' | 'forward-auth-info-log';

interface Target {
  readonly key: TargetKey;
  readonly label: string;
  readonly url: string;
  readonly serverCpu: () => number;
  readonly upstreamCpu?: () => number;
  readonly rss: () => number;
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
  readonly nginxNote: string;
  readonly profiles: ReadonlyArray<{ name: string; summaries: ProfileSummary[] }>;
  readonly text: string;
}

const ORDER: readonly TargetKey[] = ['proxy', 'nginx', 'direct', 'forward-auth', 'bare', 'proxy-info-log', 'forward-auth-info-log'];

export async function benchHttp(options: HttpOptions, log: (line: string) => void): Promise<HttpBench> {
  const dir = await mkdtemp(join(tmpdir(), 'oingate-bench-http-'));
  const file = join(dir, 'whitelist.json');
  const tenants = makeTenants(10, new Set([0]));
  await writeWhitelist(file, tenants);
  const tenant = tenants[0]!;
  const request: LoadRequest = benchRequest(bodyFor(tenant.oin), tokenFor(tenant));

  const children: BenchChild[] = [];
  const fds: number[] = [];
  let nginx: Nginx | undefined;
  const skipped = new Map<TargetKey, string>();
  const profiled: Array<{ name: string; dir: string }> = [];

  const oingate = async (name: string, env: Record<string, string>, logLevel: 'warn' | 'info') => {
    const stdout = openSync(logLevel === 'info' ? '/dev/null' : join(dir, `${name}.log`), 'a');
    fds.push(stdout);
    const profileDir = options.profileRoot ? join(options.profileRoot, name) : undefined;
    if (profileDir) profiled.push({ name, dir: profileDir });
    const child = await BenchChild.start({
      name,
      script: 'test/bench/servers/oingate.ts',
      stdout,
      ...(profileDir ? { profileDir } : {}),
      env: {
        OINGATE_LISTEN: '127.0.0.1:0',
        OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
        OINGATE_STORE: `file:${file}`,
        OINGATE_LOG_LEVEL: logLevel,
        ...env,
      },
    });
    children.push(child);
    return child;
  };

  try {
    log('http: starting the upstream, oingate (proxy, forward-auth; warn and info logging), nginx and bare node ...');
    const upstream = await BenchChild.start({ name: 'upstream', script: 'test/bench/servers/upstream.ts' });
    children.push(upstream);
    const bare = await BenchChild.start({ name: 'bare-node', script: 'test/bench/servers/bare.ts' });
    children.push(bare);
    const proxy = await oingate('oingate-proxy', { OINGATE_UPSTREAM: upstream.ready.url }, 'warn');
    const forwardAuth = await oingate('oingate-forward-auth', {}, 'warn');
    const proxyInfo = await oingate('oingate-proxy-info-log', { OINGATE_UPSTREAM: upstream.ready.url }, 'info');
    const forwardAuthInfo = await oingate('oingate-forward-auth-info-log', {}, 'info');

    const found = ensureNginx(log);
    if (found.path) {
      try {
        nginx = await Nginx.start(found.path, join(dir, 'nginx'), upstream.ready.url);
      } catch (error) {
        skipped.set('nginx', `nginx failed to start: ${(error as Error).message.split('\n')[0]}`);
      }
    } else {
      skipped.set('nginx', `skipped: nginx not installed (${found.note})`);
    }

    const childTarget = (key: TargetKey, label: string, child: BenchChild, behind?: BenchChild): Target => ({
      key,
      label,
      url: child.ready.url,
      serverCpu: () => child.cpuSeconds(),
      ...(behind ? { upstreamCpu: () => behind.cpuSeconds() } : {}),
      rss: () => child.memory()?.rss ?? NaN,
    });
    const all: Target[] = [
      childTarget('proxy', 'oingate proxy -> upstream', proxy, upstream),
      ...(nginx
        ? [
            {
              key: 'nginx' as const,
              label: 'nginx allow/deny -> upstream',
              url: nginx.url,
              serverCpu: () => nginx!.cpuSeconds(),
              upstreamCpu: () => upstream.cpuSeconds(),
              rss: () => nginx!.rss(),
            },
          ]
        : []),
      childTarget('direct', 'upstream direct (no proxy)', upstream),
      childTarget('forward-auth', 'oingate forward-auth', forwardAuth),
      childTarget('bare', 'bare node 200', bare),
      childTarget('proxy-info-log', 'oingate proxy, info log', proxyInfo, upstream),
      childTarget('forward-auth-info-log', 'oingate forward-auth, info log', forwardAuthInfo),
    ];

    // One request each: a target that does not answer 200 is reported, not measured.
    const targets: Target[] = [];
    for (const target of all) {
      try {
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
      for (const target of targets) {
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
        rows.push([key, skipped.get(key) ?? 'not measured']);
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
      'nginx: 1 worker, access_log off, allow 127.0.0.0/8; deny all; keepalive 64 to the upstream.',
      'CPU columns: share of one core during the round; µs/req: CPU time per 2xx response (less sensitive than req/s to other work on the machine).',
      '',
      table(rows, new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])),
    ].join('\n');

    for (const child of children.splice(0)) await child.stop();
    await nginx?.stop();
    nginx = undefined;

    const profiles: Array<{ name: string; summaries: ProfileSummary[] }> = [];
    for (const { name, dir: profileDir } of profiled) profiles.push({ name, summaries: await summariseDirectory(profileDir) });

    return { figures, skipped, nginxNote: found.note, profiles, text };
  } finally {
    for (const child of children) await child.stop().catch(() => undefined);
    await nginx?.stop().catch(() => undefined);
    for (const fd of fds) closeSync(fd);
    await rm(dir, { recursive: true, force: true });
  }
}
