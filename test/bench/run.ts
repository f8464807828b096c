/**
 * oingate benchmark: `npm run bench`.
 *
 * Environment:
 *   BENCH_ONLY=decision|http|100k|propagation|ratelimit   run some parts (comma-separated); default all
 *   BENCH_SECONDS=5                 seconds per load round
 *   BENCH_ROUNDS=3                  alternating HTTP rounds (after a warm-up round)
 *   BENCH_WARMUP_SECONDS=2          warm-up per HTTP target
 *   BENCH_PROFILE=1                 oingate children run with --cpu-prof; summaries printed
 *   BENCH_NO_INSTALL=1              never apt-get install nginx-light
 *   BENCH_QUICK=1                   short smoke run: defaults of 1 s rounds, 1 round, 0.5 s warm-up
 *   BENCH_TARGETS=forward-auth,koa  HTTP targets to start and measure (comma-separated); default all
 *   BENCH_BASELINE_REF=main         also run oingate from that git commit, side by side ("before/after")
 *
 * The bench reports; it does not gate: the exit code is 0 whether targets are met or not
 * (1 only when the bench itself could not run).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchDecision, PAIRS, type DecisionBench } from './decision.ts';
import { BASELINE, benchHttp, TARGET_KEYS, type HttpBench, type TargetFigures, type TargetKey } from './http.ts';
import { currentPinning, REPO_ROOT, setUpPinning } from './lib/children.ts';
import { cpuModel } from './lib/proc.ts';
import { fixed, mib, table } from './lib/stats.ts';
import { medianOf, type ServeStart } from './lib/serve-ready.ts';
import { bench100k, describeGap, LARGE, serveTable, type LargeBench, type ReloadPhase, type StallGap } from './whitelist100k.ts';
import { propagationBench } from './propagation.ts';
import { ACCURACY_LIMIT, ACCURACY_SECONDS, benchRateLimitAccuracy, type AccuracyBench } from './ratelimit.ts';

/** Tenants besides the measured one in the propagation bench's store. */
const PROPAGATION_TENANTS = 100_000;

type Part = 'decision' | 'http' | '100k' | 'propagation' | 'ratelimit';
const PARTS: readonly Part[] = ['decision', 'http', '100k', 'propagation', 'ratelimit'];

/** The starts of `oingate serve` in one part, on every CPU and pinned. */
type ServeStarts = { readonly unpinned: readonly ServeStart[]; readonly pinned: readonly ServeStart[] };

/** Which code the `oingate serve` starts ran (dist, or sources when dist/ was not a build of them). */
function buildsOf(serve: ServeStarts): string {
  return [...new Set([...serve.unpinned, ...serve.pinned].map((s) => s.build))].join(', ');
}

function positive(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!(value > 0)) throw new ConfigError(`${name} must be a positive number, got "${text}"`);
  return value;
}

function parts(): Set<Part> {
  const text = process.env['BENCH_ONLY'];
  if (!text) return new Set(PARTS);
  const chosen = text.split(',').map((p) => p.trim()) as Part[];
  for (const part of chosen) {
    if (!PARTS.includes(part)) throw new ConfigError(`BENCH_ONLY must be one or more of ${PARTS.join(', ')}, got "${part}"`);
  }
  return new Set(chosen);
}

function targets(baselineRef: string | undefined): Set<TargetKey> {
  const text = process.env['BENCH_TARGETS'];
  const all = TARGET_KEYS.filter((key) => baselineRef !== undefined || !BASELINE.includes(key));
  if (!text) return new Set(all);
  const chosen = text.split(',').map((t) => t.trim()) as TargetKey[];
  for (const key of chosen) {
    if (!TARGET_KEYS.includes(key)) throw new ConfigError(`BENCH_TARGETS must be one or more of ${TARGET_KEYS.join(', ')}, got "${key}"`);
    if (BASELINE.includes(key) && baselineRef === undefined) throw new ConfigError(`BENCH_TARGETS "${key}" needs BENCH_BASELINE_REF`);
  }
  return new Set(chosen);
}

const log = (line: string) => console.log(line);

/** The commit measured, e.g. "48d4f24 (with uncommitted changes)". */
function codeVersion(): string {
  const git = (args: string[]) => spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' });
  const head = git(['log', '-1', '--format=%h %cI %s']);
  if (head.status !== 0) return 'unknown (not a git checkout)';
  const dirty = git(['status', '--porcelain', '--untracked-files=no']).stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? ' (plus uncommitted changes)' : ''}`;
}
const heading = (title: string) => console.log(`\n=== ${title} ${'='.repeat(Math.max(0, 72 - title.length))}`);

type Verdict = 'PASS' | 'MISS' | 'n/a';
const verdict = (ok: boolean | undefined): Verdict => (ok === undefined ? 'n/a' : ok ? 'PASS' : 'MISS');

/** Over the reload phases, the stall that is largest by `size`. */
function longestOf(phases: readonly ReloadPhase[], size: (gap: StallGap) => number, which: 'longest' | 'longestOwn'): StallGap | undefined {
  let best: StallGap | undefined;
  for (const phase of phases) {
    const gap = phase[which];
    if (gap && (!best || size(gap) > size(best))) best = gap;
  }
  return best;
}

async function main(): Promise<void> {
  const selected = parts();
  // Quick: a smoke run that every part and target still goes through, with figures too short to trust.
  const quick = process.env['BENCH_QUICK'] === '1';
  const seconds = positive('BENCH_SECONDS', quick ? 1 : 5);
  const rounds = Math.round(positive('BENCH_ROUNDS', quick ? 1 : 3));
  const warmupSeconds = positive('BENCH_WARMUP_SECONDS', Math.min(quick ? 0.5 : 2, seconds));
  const baselineRef = process.env['BENCH_BASELINE_REF'] || undefined;
  const httpTargets = targets(baselineRef);
  const profile = process.env['BENCH_PROFILE'] === '1';
  const profileRoot = profile ? await mkdtemp(join(tmpdir(), 'oingate-bench-profiles-')) : undefined;
  const cpuCount = cpus().length;
  const pinning = setUpPinning(cpuCount);
  const startedAt = new Date();

  const machine = [
    `date:     ${startedAt.toISOString()}`,
    `cpu:      ${cpuModel()}, ${cpuCount} cores (kernel ${release()})`,
    `node:     ${process.version}`,
    `code:     ${codeVersion()}`,
    `pinning:  ${pinning}`,
    `load:     1-min load average ${loadavg()[0]!.toFixed(2)} at start` +
      (loadavg()[0]! > 0.5 ? ' (other work is running on this machine: figures will be noisy)' : ''),
    `settings: parts ${[...selected].join(', ')}; ${seconds} s per round, ${rounds} rounds, ${warmupSeconds} s warm-up` +
      (quick ? ' (BENCH_QUICK: a smoke run, figures are rough)' : '') +
      (profile ? '; CPU profiling ON (throughput figures of this run are lowered by the profiler)' : ''),
    ...(selected.has('http') && process.env['BENCH_TARGETS'] ? [`targets:  ${[...httpTargets].join(', ')}`] : []),
    ...(baselineRef !== undefined ? [`baseline: BENCH_BASELINE_REF=${baselineRef}`] : []),
  ];
  heading('oingate bench');
  machine.forEach((line) => log(line));

  let decision: DecisionBench | undefined;
  let http: HttpBench | undefined;
  let large: LargeBench | undefined;

  if (selected.has('decision')) {
    heading('decision function (in-process, no HTTP)');
    decision = await benchDecision(log);
    log(
      `decide(): HS256 token, 400-byte JSON body, peer inside the tenant's CIDR; ${PAIRS} random (body, token) pairs; ` +
        `timer overhead ${fixed(decision.timerOverheadUs * 1000, 0)} ns per reading (included in per-call figures)`,
    );
    log(
      table(
        [
          ['whitelist', 'p50 µs', 'p90 µs', 'p99 µs', 'batch mean µs', 'snapshot build'],
          ...[decision.small, decision.large, decision.revoked].map((m) => [
            `${m.tenants.toLocaleString('en-US')} tenants${m === decision!.revoked ? ' + 100,000 revoked jtis' : ''}`,
            fixed(m.p50Us, 2),
            fixed(m.p90Us, 2),
            fixed(m.p99Us, 2),
            fixed(m.batchMeanUs, 2),
            `${m.buildMs.toFixed(0)} ms`,
          ]),
        ],
        new Set([1, 2, 3, 4, 5]),
      ),
    );
    log(`100k / 10: p50 x${fixed(decision.ratioP50, 3)}, batch mean x${fixed(decision.ratioBatch, 3)}`);
    log(`100k with 100k revocations / 100k without: p50 x${fixed(decision.ratioRevokedP50, 3)}, batch mean x${fixed(decision.ratioRevokedBatch, 3)}`);
    log('\ncomponents (µs per call, batch means; informative):');
    log(table([['step', 'µs'], ...decision.breakdown.map(([name, us]) => [name, fixed(us, 2)])], new Set([1])));
  }

  if (selected.has('http')) {
    heading('HTTP: proxy vs nginx vs direct, forward-auth vs HAProxy, bare node, bare Koa');
    http = await benchHttp({ seconds, warmupSeconds, rounds, profileRoot, targets: httpTargets, baselineRef }, log);
    log('');
    log(http.text);
    for (const [key, reason] of http.skipped) log(`${key}: ${reason}`);
    for (const note of http.notes) log(note);
    for (const [key, line] of http.refusals) log(`refusal check ${key}: ${line}`);
  }

  if (selected.has('100k')) {
    heading(`whitelist of ${LARGE.toLocaleString('en-US')} tenants`);
    large = await bench100k({ seconds, profileRoot }, log);
    log('');
    log(large.text);
  }

  let propagation: Awaited<ReturnType<typeof propagationBench>> | undefined;
  let revocation: Awaited<ReturnType<typeof propagationBench>> | undefined;
  if (selected.has('propagation')) {
    heading('PostgreSQL propagation: COMMIT -> enforced by all of 3 instances, 100,000 tenants');
    propagation = await propagationBench({ changes: 50, tenants: PROPAGATION_TENANTS });
    log(`50 changes, 3 oingate instances on one database of ${PROPAGATION_TENANTS + 1} tenants: median ${fixed(propagation.medianMs, 1)} ms, worst ${fixed(propagation.worstMs, 1)} ms`);
    log(`start-up of each instance (startService, the first full read and build of ${PROPAGATION_TENANTS + 1} tenants): ${propagation.startMs.map((ms) => `${fixed(ms, 0)} ms`).join(', ')}`);
    log(serveTable(propagation.serve));
    heading('PostgreSQL revocation: COMMIT -> refused by all of 3 instances, 100,000 tenants and 100,000 revocations');
    revocation = await propagationBench({ changes: 50, tenants: PROPAGATION_TENANTS, kind: 'revocation' });
    log(
      `50 revocations (and their deletions, alternately), 3 instances, ${PROPAGATION_TENANTS + 1} tenants and ${PROPAGATION_TENANTS} revocations in the store: ` +
        `median ${fixed(revocation.medianMs, 1)} ms, worst ${fixed(revocation.worstMs, 1)} ms`,
    );
  }

  let accuracy: AccuracyBench | undefined;
  let accuracyError: string | undefined;
  if (selected.has('ratelimit')) {
    heading('rate limit accuracy: 2 instances sharing one limit through Redis');
    try {
      accuracy = await benchRateLimitAccuracy(log);
    } catch (error) {
      // A missing redis-server skips this part only.
      accuracyError = (error as Error).message.split('\n')[0];
      log(`ratelimit: not measured: ${accuracyError}`);
    }
  }
  if (accuracy) {
    log(
      `admitted ${accuracy.admitted} of ${accuracy.admitted + accuracy.refused + accuracy.other} in ${fixed(accuracy.seconds, 2)} s ` +
        `(429: ${accuracy.refused}, other: ${accuracy.other}); ideal burst + perSecond x ${ACCURACY_SECONDS} = ${accuracy.expected}; ` +
        `deviation ${fixed(accuracy.deviation * 100, 1)}%; decisions counted locally (Redis slow or away): ${accuracy.fallbackDecisions}`,
    );
    for (const note of accuracy.notes) log(note);
  }

  if (profileRoot) {
    heading('CPU profiles (node --cpu-prof)');
    log(`profiles written under ${profileRoot}`);
    const summaries = [
      ...(http?.profiles ?? []),
      ...(large ? [{ name: 'oingate-100k-tenants (start, steady load, reloads)', summaries: large.profiles }] : []),
    ];
    for (const { name, summaries: list } of summaries) {
      for (const summary of list) {
        log(`\n--- ${name} ---`);
        log(summary.text);
      }
      if (list.length === 0) log(`\n--- ${name} --- no profile written`);
    }
  }

  // ---- final table ------------------------------------------------------
  const f = http?.figures;
  const proxy = f?.get('proxy');
  const nginx = f?.get('nginx');
  const direct = f?.get('direct');
  const forwardAuth = f?.get('forward-auth');
  const bare = f?.get('bare');
  const koa = f?.get('koa');
  const haproxy = f?.get('haproxy');
  const faBaseline = f?.get('forward-auth-baseline');
  const proxyBaseline = f?.get('proxy-baseline');
  const limitLocal = f?.get('forward-auth-limit-local');
  const limitRedis = f?.get('forward-auth-limit-redis');
  const proxyInfo = f?.get('proxy-info-log');
  const forwardAuthInfo = f?.get('forward-auth-info-log');
  const ratio = (a?: { rps: number }, b?: { rps: number }) => (a && b ? a.rps / b.rps : undefined);
  const best = (a?: { bestRps: number }, b?: { bestRps: number }) => (a && b ? a.bestRps / b.bestRps : undefined);
  const proxyNginx = ratio(proxy, nginx);
  const proxyDirect = ratio(proxy, direct);
  const faBare = ratio(forwardAuth, bare);
  const faKoa = ratio(forwardAuth, koa);
  const faHaproxy = ratio(forwardAuth, haproxy);
  const faBefore = ratio(forwardAuth, faBaseline);
  const proxyBefore = ratio(proxy, proxyBaseline);
  const notRun = (part: Part) => (selected.has(part) ? 'not measured' : `not run (BENCH_ONLY)`);
  /** Why a ratio is missing: the first of its two targets that was skipped or not selected. */
  const missing = (...keys: TargetKey[]): string => {
    if (!http) return notRun('http');
    for (const key of keys) {
      const reason = http.skipped.get(key);
      if (reason) return `${key}: ${reason}`;
      if (!httpTargets.has(key)) return BASELINE.includes(key) ? 'not run (set BENCH_BASELINE_REF=<git ref>)' : `${key} not in BENCH_TARGETS`;
    }
    return 'not measured';
  };
  const ratioCell = (r: number | undefined, a: { rps: number } | undefined, b: { rps: number } | undefined, ...keys: TargetKey[]) =>
    r !== undefined ? `${fixed(r, 2)} x (${fixed(a?.rps, 0)} / ${fixed(b?.rps, 0)})` : missing(...keys);

  const rows: string[][] = [['target', 'measured', 'result']];
  rows.push([
    'oingate-proxy >= 0.5 x nginx (req/s)',
    ratioCell(proxyNginx, proxy, nginx, 'proxy', 'nginx'),
    verdict(proxyNginx === undefined ? undefined : proxyNginx >= 0.5),
  ]);
  rows.push([
    'forward-auth >= 0.75 x bare Koa (req/s)',
    ratioCell(faKoa, forwardAuth, koa, 'forward-auth', 'koa'),
    verdict(faKoa === undefined ? undefined : faKoa >= 0.75),
  ]);
  // "Not slower" with a 5 % allowance for noise (on a busy machine two runs of the same code can differ by more).
  rows.push([
    `forward-auth not slower than baseline (>= ${NOT_SLOWER} x, req/s)`,
    ratioCell(faBefore, forwardAuth, faBaseline, 'forward-auth', 'forward-auth-baseline'),
    verdict(faBefore === undefined ? undefined : faBefore >= NOT_SLOWER),
  ]);
  rows.push([
    `proxy not slower than baseline (>= ${NOT_SLOWER} x, req/s)`,
    ratioCell(proxyBefore, proxy, proxyBaseline, 'proxy', 'proxy-baseline'),
    verdict(proxyBefore === undefined ? undefined : proxyBefore >= NOT_SLOWER),
  ]);
  const faLocal = ratio(limitLocal, forwardAuth);
  const faRedis = ratio(limitRedis, forwardAuth);
  rows.push([
    'forward-auth, limit set not reached, local >= 0.9 x no limit',
    ratioCell(faLocal, limitLocal, forwardAuth, 'forward-auth-limit-local', 'forward-auth'),
    verdict(faLocal === undefined ? undefined : faLocal >= 0.9),
  ]);
  rows.push([
    'forward-auth, limit set not reached, Redis >= 0.7 x no limit',
    ratioCell(faRedis, limitRedis, forwardAuth, 'forward-auth-limit-redis', 'forward-auth'),
    verdict(faRedis === undefined ? undefined : faRedis >= 0.7),
  ]);
  rows.push([
    `rate limit: 2 instances, ${ACCURACY_SECONDS} s at 2x, within 10% of burst + perSecond x ${ACCURACY_SECONDS}`,
    accuracy
      ? `${accuracy.admitted} admitted vs ${accuracy.expected} (${accuracy.deviation >= 0 ? '+' : ''}${fixed(accuracy.deviation * 100, 1)}%; ${ACCURACY_LIMIT.perSecond}/s burst ${ACCURACY_LIMIT.burst})`
      : accuracyError !== undefined
        ? `not measured: ${accuracyError}`
        : notRun('ratelimit'),
    verdict(accuracy ? Math.abs(accuracy.deviation) <= 0.1 && accuracy.other === 0 : undefined),
  ]);
  const worstP50 = decision ? Math.max(decision.small.p50Us, decision.large.p50Us) : undefined;
  rows.push([
    'decide() <= 20 µs median (HS256)',
    decision ? `${fixed(decision.small.p50Us, 2)} µs (10) / ${fixed(decision.large.p50Us, 2)} µs (100k)` : notRun('decision'),
    verdict(worstP50 === undefined ? undefined : worstP50 <= 20),
  ]);
  // The target is the command's start on the 2-core machine; pinned to one CPU and the bench's own start are shown beside it.
  const readyRow = (target: string, serve: ServeStarts | undefined, besides: string, part: Part): void => {
    const median = serve ? medianOf(serve.unpinned.map((s) => s.readyMs)) : undefined;
    rows.push([
      target,
      serve
        ? `${fixed(median! / 1000, 2)} s oingate serve (${buildsOf(serve)}) spawn -> /readyz 200 on 2 CPUs, median of ${serve.unpinned.length}; ` +
          `pinned to one CPU ${fixed(medianOf(serve.pinned.map((s) => s.readyMs)) / 1000, 2)} s; ${besides}`
        : notRun(part),
      verdict(median === undefined ? undefined : median < 3000),
    ]);
  };
  readyRow(
    '100k whitelist ready < 3 s',
    large?.serve,
    large ? `the bench's tsx child ${fixed(large.large.readyMs / 1000, 2)} s (10 tenants: ${fixed(large.small.readyMs / 1000, 2)} s)` : '',
    '100k',
  );
  readyRow(
    '100k whitelist ready < 3 s (PostgreSQL)',
    propagation?.serve,
    propagation ? `startService in the bench's own process (tsx) ${fixed(Math.min(...propagation.startMs) / 1000, 2)} s` : '',
    'propagation',
  );
  const serveRss = large ? medianOf(large.serve.unpinned.map((s) => s.rssAtRest)) : undefined;
  rows.push([
    '100k whitelist resident < 400 MiB',
    large
      ? `${mib(serveRss)} at rest, oingate serve (${buildsOf(large.serve)}), median; the bench's tsx child ${mib(large.large.rssAtRest)} at rest, ${mib(large.large.rss)} at ready ` +
        `(10 tenants: ${mib(large.small.rssAtRest)}; after reloads ${mib(large.rssAfterReload)}, peak ${mib(large.hwmAfterReload)})`
      : notRun('100k'),
    verdict(serveRss === undefined ? undefined : serveRss < 400 * 1048576),
  ]);
  rows.push([
    'decide() at 100k within 10% of 10 tenants',
    decision ? `${fixed((decision.ratioP50 - 1) * 100, 1)}% p50 (${fixed((decision.ratioBatch - 1) * 100, 1)}% batch mean)` : notRun('decision'),
    verdict(decision ? decision.ratioP50 <= 1.1 : undefined),
  ]);
  rows.push([
    'reload of 100k under load: 0 failed requests',
    large ? `${large.failed} failed of ${large.reloadLoad.ok + large.failed} (2 reloads)` : notRun('100k'),
    verdict(large ? large.failed === 0 : undefined),
  ]);
  rows.push([
    'reload of 100k under load: no stall > 50 ms',
    large
      ? `${fixed(large.maxStallMs, 1)} ms longest event-loop delay (monitorEventLoopDelay in oingate); ` +
          `longest stall ${describeGap(longestOf(large.phases, (gap) => gap.ms, 'longest'))}, longest own block ${describeGap(longestOf(large.phases, (gap) => gap.ranMs, 'longestOwn'))}`
      : notRun('100k'),
    verdict(large ? large.maxStallMs <= 50 : undefined),
  ]);

  rows.push([
    'PostgreSQL change at 100k enforced by 3 instances: median < 100 ms, worst < 1 s',
    propagation ? `median ${fixed(propagation.medianMs, 1)} ms, worst ${fixed(propagation.worstMs, 1)} ms (50 changes)` : notRun('propagation'),
    verdict(propagation ? propagation.medianMs < 100 && propagation.worstMs < 1000 : undefined),
  ]);

  rows.push([
    'revocation at 100k tenants + 100k revocations enforced by 3 instances within 1 s',
    revocation ? `median ${fixed(revocation.medianMs, 1)} ms, worst ${fixed(revocation.worstMs, 1)} ms (50 changes)` : notRun('propagation'),
    verdict(revocation ? revocation.worstMs < 1000 : undefined),
  ]);
  rows.push([
    'decide() with 100k revocations loaded vs none (100k tenants)',
    decision ? `p50 ${fixed(decision.revoked.p50Us, 2)} vs ${fixed(decision.large.p50Us, 2)} µs (${fixed((decision.ratioRevokedP50 - 1) * 100, 1)}%)` : notRun('decision'),
    verdict(decision ? decision.ratioRevokedP50 <= 1.1 : undefined),
  ]);

  heading('summary');
  machine.forEach((line) => log(line));
  log(`          1-min load average ${loadavg()[0]!.toFixed(2)} at the end (the bench itself adds up to ~2)`);
  log('');
  log(table(rows));
  log('');
  log('informative:');
  log(`  forward-auth / HAProxy (C anchor): ${ratioCell(faHaproxy, forwardAuth, haproxy, 'forward-auth', 'haproxy')}`);
  log(`  forward-auth / bare node:          ${ratioCell(faBare, forwardAuth, bare, 'forward-auth', 'bare')}`);
  log(`  bare Koa / bare node:              ${ratioCell(ratio(koa, bare), koa, bare, 'koa', 'bare')}`);
  if (faBaseline || proxyBaseline) {
    const us = (a?: { serverUsPerRequest: number }, b?: { serverUsPerRequest: number }) =>
      a && b ? `${fixed(a.serverUsPerRequest, 0)} vs ${fixed(b.serverUsPerRequest, 0)} µs CPU/req` : 'n/a';
    log(`  before/after (baseline ${http?.baselineLabel ?? baselineRef}):`);
    log(`    forward-auth current / baseline: ${ratioCell(faBefore, forwardAuth, faBaseline, 'forward-auth', 'forward-auth-baseline')}; ${us(forwardAuth, faBaseline)}; best rounds ${fixed(best(forwardAuth, faBaseline), 2)}`);
    log(`    proxy        current / baseline: ${ratioCell(proxyBefore, proxy, proxyBaseline, 'proxy', 'proxy-baseline')}; ${us(proxy, proxyBaseline)}; best rounds ${fixed(best(proxy, proxyBaseline), 2)}`);
  }
  log(`  oingate-proxy / direct upstream:   ${proxyDirect !== undefined ? `${fixed(proxyDirect, 2)} x (${fixed(proxy?.rps, 0)} / ${fixed(direct?.rps, 0)} req/s)` : 'n/a'}`);
  if (f && f.size > 0) {
    const each = (cell: (t: TargetFigures) => string) => [...f.values()].map((t) => `${t.key} ${cell(t)}`).join(', ');
    log(`  latency p50/p99 ms: ${each((t) => `${fixed(t.p50Ms, 2)}/${fixed(t.p99Ms, 2)}`)}`);
    log(`  CPU µs per request (server + upstream): ${each((t) => fixed(t.serverUsPerRequest, 0) + (t.upstreamUsPerRequest === undefined ? '' : ` + ${fixed(t.upstreamUsPerRequest, 0)}`))}`);
    const pairs: Array<[string, TargetKey, TargetKey]> = [
      ['proxy/nginx', 'proxy', 'nginx'],
      ['proxy/direct', 'proxy', 'direct'],
      ['forward-auth/bare Koa', 'forward-auth', 'koa'],
      ['forward-auth/bare node', 'forward-auth', 'bare'],
      ['forward-auth/HAProxy', 'forward-auth', 'haproxy'],
      ['limit local/forward-auth', 'forward-auth-limit-local', 'forward-auth'],
      ['limit Redis/forward-auth', 'forward-auth-limit-redis', 'forward-auth'],
    ];
    const bests = pairs.filter(([, a, b]) => f.has(a) && f.has(b)).map(([name, a, b]) => `${name} ${fixed(best(f.get(a), f.get(b)), 2)}`);
    if (bests.length) log(`  ratios of the best rounds (least disturbed on a shared machine): ${bests.join(', ')}`);
  }
  const change = (r: number | undefined) => (r === undefined ? 'n/a' : `${r >= 1 ? '+' : ''}${fixed((r - 1) * 100, 1)}%`);
  if (proxyInfo || forwardAuthInfo) {
    log(
      `  req/s with info-level decision logging on (to /dev/null) vs off: proxy ${change(ratio(proxyInfo, proxy))}, ` +
        `forward-auth ${change(ratio(forwardAuthInfo, forwardAuth))} (medians; best rounds: ${change(best(proxyInfo, proxy))}, ` +
        `${change(best(forwardAuthInfo, forwardAuth))}); the main figures run with it off (warn)`,
    );
  }
  if (large) {
    log(
      `  forward-auth req/s, 100k vs 10 tenants over HTTP: ${fixed(large.steadyLarge.rps, 0)} vs ${fixed(large.steadySmall.rps, 0)} ` +
        `(${fixed((large.steadyLarge.rps / large.steadySmall.rps - 1) * 100, 1)}%)`,
    );
  }
  if (f) {
    const saturated = [...f.values()].filter((t) => t.loadgenCpu > 0.9);
    if (saturated.length) {
      log(`  note: the load generator used > 90% of its core for: ${saturated.map((t) => t.key).join(', ')} — those figures may be client-bound.`);
    }
  }
  if (!currentPinning().pinning) log(`  note: ${currentPinning().note}`);
  if (profileRoot) log(`  CPU profiles: ${profileRoot}`);
}

class ConfigError extends Error {}

const NOT_SLOWER = 0.95;

// Missed targets still exit 0 (the bench reports, it does not gate); only a
// bench that could not run exits 1.
main().then(
  () => process.exit(0),
  (error: unknown) => {
    const text = error instanceof ConfigError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.error(`bench failed: ${text}`);
    process.exit(1);
  },
);
