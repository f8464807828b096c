/**
 * A whitelist of 100,000 tenants (two CIDRs and one HS256 key each) in a
 * file: time from spawn to /readyz 200, resident memory, steady forward-auth
 * throughput against a 10-tenant whitelist, and two reloads under load (a
 * file rewrite picked up by the watcher, then a rewrite plus POST /reload)
 * with failed requests counted and the event-loop delay measured inside the
 * oingate process.
 */
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchChild } from './lib/children.ts';
import { bodyFor, clientIpFor, makeTenants, seededRandom, tokenFor, whitelistText, type BenchTenant } from './lib/fixtures.ts';
import { benchRequest, runLoad, startLoad, type LoadRequest, type LoadResult } from './lib/load.ts';
import { summariseDirectory, type ProfileSummary } from './lib/profile.ts';
import { medianOf, serveStarts, type ServeStart } from './lib/serve-ready.ts';
import { fixed, mib, sleep, table, thousands } from './lib/stats.ts';

export const LARGE = 100_000;
const SMALL = 10;
const VARIANTS = 64;

export interface Startup {
  readonly tenants: number;
  /** Spawn to the first /readyz 200, as the bench saw it. */
  readonly readyMs: number;
  /** Inside the child: process start to listening, and time in startService. */
  readonly sinceProcessStartMs: number;
  readonly startServiceMs: number;
  readonly rss: number;
  readonly hwm: number;
  /** Resident memory at rest: REST_MS after ready, nothing loading, no requests. */
  readonly rssAtRest: number;
}

/** A stall between two ticks of the child's 2 ms timer, split by its schedstat (stall-split.ts). */
export interface StallGap {
  readonly ms: number;
  readonly ranMs: number;
  readonly waitedMs: number;
}

// The first load's worker thread and garbage take a moment to be given back.
const REST_MS = 2_000;

export interface ReloadPhase {
  readonly trigger: string;
  /** From the file write to the new version in /readyz (or the POST's answer). */
  readonly landMs: number;
  readonly loopDelayMaxMs: number;
  readonly loopDelayP99Ms: number;
  /** The longest stall, and the one in which oingate's main thread itself ran longest (Linux only). */
  readonly longest?: StallGap;
  readonly longestOwn?: StallGap;
}

export interface LargeBench {
  readonly fileBytes: number;
  /** `oingate serve` itself on the 100k file: spawn -> /readyz 200, on every CPU and pinned to one. */
  readonly serve: { readonly unpinned: readonly ServeStart[]; readonly pinned: readonly ServeStart[] };
  readonly small: Startup;
  readonly large: Startup;
  readonly steadySmall: LoadResult;
  readonly steadyLarge: LoadResult;
  readonly reloadLoad: LoadResult;
  readonly phases: readonly ReloadPhase[];
  readonly failed: number;
  readonly maxStallMs: number;
  readonly rssAfterReload: number;
  readonly hwmAfterReload: number;
  readonly profiles: ProfileSummary[];
  readonly profileDir: string | undefined;
  readonly text: string;
}

// Starts of `oingate serve` per placement: its start-up is what the ready target is about.
const SERVE_ROUNDS = 3;

/** The starts of `oingate serve`, one row per placement. */
export function serveTable(serve: { readonly unpinned: readonly ServeStart[]; readonly pinned: readonly ServeStart[] }): string {
  const rows = [['oingate serve (src/bin.js)', 'build', 'spawn -> /readyz 200, median', 'each start', 'RSS at rest, median']];
  for (const [label, starts] of [['on every CPU', serve.unpinned], ['pinned to one CPU', serve.pinned]] as const) {
    if (starts.length === 0) continue;
    rows.push([
      starts[0]!.pinned || label === 'on every CPU' ? label : `${label} (no taskset: every CPU)`,
      [...new Set(starts.map((s) => s.build))].join(', '),
      `${medianOf(starts.map((s) => s.readyMs)).toFixed(0)} ms`,
      starts.map((s) => s.readyMs.toFixed(0)).join(' / '),
      mib(medianOf(starts.map((s) => s.rssAtRest))),
    ]);
  }
  return table(rows, new Set([2, 3, 4]));
}

interface Readiness {
  ready: boolean;
  version: string | null;
  tenants: number;
  lastError: string | null;
}

async function readiness(adminUrl: string): Promise<{ status: number; body: Readiness }> {
  const response = await fetch(new URL('/readyz', adminUrl), { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: (await response.json()) as Readiness };
}

/** 64 request variants over random tenants, each from an address inside that tenant's range (via X-Forwarded-For). */
function requestsFor(tenants: readonly BenchTenant[], seed: number): LoadRequest[] {
  const random = seededRandom(seed);
  const requests: LoadRequest[] = [];
  for (let i = 0; i < VARIANTS; i++) {
    const index = Math.floor(random() * tenants.length);
    const tenant = tenants[index]!;
    requests.push(benchRequest(bodyFor(tenant.oin), tokenFor(tenant), { 'x-forwarded-for': clientIpFor(index) }));
  }
  return requests;
}

async function startGate(name: string, file: string, dir: string, profileDir: string | undefined, fds: number[]) {
  const stdout = openSync(join(dir, `${name}.log`), 'a');
  fds.push(stdout);
  const child = await BenchChild.start({
    name,
    script: 'test/bench/servers/oingate.ts',
    stdout,
    readyTimeoutMs: 180_000,
    ...(profileDir ? { profileDir } : {}),
    env: {
      OINGATE_LISTEN: '127.0.0.1:0',
      OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
      OINGATE_STORE: `file:${file}`,
      OINGATE_LOG_LEVEL: 'warn',
      // The load comes from 127.0.0.1 and names each tenant's own address in X-Forwarded-For.
      OINGATE_TRUSTED_PROXIES: '127.0.0.0/8',
      BENCH_LOOP_DELAY: '1',
    },
  });
  // Ready means /readyz answers 200; the child announces itself only after the first load.
  for (;;) {
    const { status } = await readiness(child.ready.adminUrl!);
    if (status === 200) break;
    await sleep(10);
  }
  const readyMs = performance.now() - child.spawnedAt;
  const memory = child.memory();
  await sleep(REST_MS);
  const rest = child.memory();
  const startup: Startup = {
    tenants: 0,
    readyMs,
    sinceProcessStartMs: child.ready.sinceProcessStartMs ?? NaN,
    startServiceMs: child.ready.startServiceMs ?? NaN,
    rss: memory?.rss ?? NaN,
    hwm: memory?.hwm ?? NaN,
    rssAtRest: rest?.rss ?? NaN,
  };
  return { child, startup };
}

/** The child's 'loop-delay' answer (servers/oingate.ts). */
interface LoopDelay {
  readonly maxMs: number;
  readonly p99Ms: number;
  readonly longest?: StallGap;
  readonly longestOwn?: StallGap;
}

function phaseDelay(delay: LoopDelay): Omit<ReloadPhase, 'trigger' | 'landMs'> {
  return {
    loopDelayMaxMs: delay.maxMs,
    loopDelayP99Ms: delay.p99Ms,
    ...(delay.longest ? { longest: delay.longest } : {}),
    ...(delay.longestOwn ? { longestOwn: delay.longestOwn } : {}),
  };
}

/** "120 ms (ran 3, waited 117)": a stall and what filled it. */
export function describeGap(gap: StallGap | undefined): string {
  return gap ? `${gap.ms.toFixed(0)} ms (ran ${gap.ranMs.toFixed(0)}, waited ${gap.waitedMs.toFixed(0)})` : 'n/a';
}

async function writeAtomically(file: string, text: Buffer): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
}

/** Counts warn/error lines of a child's JSON log by message and reason. */
async function logSummary(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let key: string;
    try {
      const entry = JSON.parse(line) as { msg?: string; reason?: string; level?: number };
      key = `${entry.msg ?? '?'}${entry.reason ? `/${entry.reason}` : ''}`;
    } catch {
      key = line.slice(0, 80);
    }
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  if (counts.size === 0) return 'no lines';
  return [...counts.entries()].map(([key, n]) => `${n} x ${key}`).join(', ');
}

export async function bench100k(
  options: { seconds: number; profileRoot: string | undefined },
  log: (line: string) => void,
): Promise<LargeBench> {
  const dir = await mkdtemp(join(tmpdir(), 'oingate-bench-100k-'));
  const fds: number[] = [];
  const children: BenchChild[] = [];
  try {
    log(`100k: generating ${LARGE.toLocaleString('en-US')} tenants (two CIDRs and one HS256 key each) ...`);
    const smallTenants = makeTenants(SMALL);
    const smallFile = join(dir, 'small', 'whitelist.json');
    const largeTenants = makeTenants(LARGE);
    const largeFile = join(dir, 'large', 'whitelist.json');
    await mkdir(join(dir, 'small'));
    await mkdir(join(dir, 'large'));
    await writeAtomically(smallFile, Buffer.from(whitelistText(smallTenants)));
    const largeText = Buffer.from(whitelistText(largeTenants));
    await writeAtomically(largeFile, largeText);
    // The reload files are made now: serialising 100k tenants during the load would stall the load generator.
    const changed = (label: string) =>
      Buffer.from(whitelistText(largeTenants.map((t, i) => (i === 1 ? { ...t, name: `${t.name} (${label})` } : t))));
    const reloadA = changed('changed A');
    const reloadB = changed('changed B');
    log(`100k: whitelist file ${mib(largeText.length)}`);

    log(`100k: oingate serve on the 100k file, ${SERVE_ROUNDS} starts on every CPU and ${SERVE_ROUNDS} pinned to one, alternately ...`);
    const serve = await serveStarts(`file:${largeFile}`, SERVE_ROUNDS);

    log(`100k: baseline, ${SMALL} tenants: start, then ${options.seconds} s steady load ...`);
    const small = await startGate('oingate-10-tenants', smallFile, dir, undefined, fds);
    children.push(small.child);
    const smallRequests = requestsFor(smallTenants, 11);
    await runLoad(small.child.ready.url, smallRequests, Math.min(2, options.seconds));
    const steadySmall = await runLoad(small.child.ready.url, smallRequests, options.seconds);
    await small.child.stop();

    log(`100k: ${LARGE.toLocaleString('en-US')} tenants: start ...`);
    const profileDir = options.profileRoot ? join(options.profileRoot, 'oingate-100k') : undefined;
    const large = await startGate('oingate-100k-tenants', largeFile, dir, profileDir, fds);
    children.push(large.child);
    const gate = large.child;
    const adminUrl = gate.ready.adminUrl!;
    log(`100k: ready in ${large.startup.readyMs.toFixed(0)} ms, RSS ${mib(large.startup.rss)}; ${options.seconds} s steady load ...`);
    const largeRequests = requestsFor(largeTenants, 12);
    await runLoad(gate.ready.url, largeRequests, Math.min(2, options.seconds));
    const steadyLarge = await runLoad(gate.ready.url, largeRequests, options.seconds);

    log('100k: reloads under load: (A) rewrite the file, the watcher reloads; (B) rewrite the file and POST /reload ...');
    const load = startLoad(gate.ready.url, largeRequests, 600);
    await sleep(1500);
    const phases: ReloadPhase[] = [];

    // (A) The watcher picks up a rewritten file.
    const versionBefore = (await readiness(adminUrl)).body.version;
    await gate.request('loop-delay-reset');
    let t0 = performance.now();
    await writeAtomically(largeFile, reloadA);
    let versionA = versionBefore;
    while (versionA === versionBefore) {
      if (performance.now() - t0 > 60_000) throw new Error('reload A did not land within 60 s');
      await sleep(20);
      versionA = (await readiness(adminUrl)).body.version;
    }
    let landMs = performance.now() - t0;
    await sleep(Math.max(1000, landMs));
    let delay = (await gate.request('loop-delay'))['value'] as LoopDelay;
    phases.push({ trigger: 'file rewritten, watcher reload', landMs, ...phaseDelay(delay) });

    // (B) Rewritten again and POST /reload at once (the watcher's reload queues behind it).
    await gate.request('loop-delay-reset');
    t0 = performance.now();
    await writeAtomically(largeFile, reloadB);
    const response = await fetch(new URL('/reload', adminUrl), { method: 'POST', signal: AbortSignal.timeout(60_000) });
    const answer = (await response.json()) as Readiness;
    landMs = performance.now() - t0;
    if (response.status !== 200 || answer.version === versionA) {
      log(`100k: POST /reload answered ${response.status}, version ${answer.version} (before: ${versionA}); error: ${answer.lastError}`);
    }
    // Let the queued watcher reload (same content, rebuilt then dropped) finish too.
    await sleep(Math.max(2000, 1.5 * landMs));
    delay = (await gate.request('loop-delay'))['value'] as LoopDelay;
    phases.push({ trigger: 'file rewritten + POST /reload', landMs, ...phaseDelay(delay) });

    await sleep(500);
    load.stop();
    const reloadLoad = await load.done;
    const after = gate.memory();
    const finalVersion = (await readiness(adminUrl)).body;
    if (finalVersion.tenants !== LARGE) log(`100k: after the reloads /readyz reports ${finalVersion.tenants} tenants`);
    await gate.stop();

    const profiles = profileDir ? await summariseDirectory(profileDir) : [];
    const gateLog = await logSummary(join(dir, 'oingate-100k-tenants.log'));
    const failed = reloadLoad.non2xx + reloadLoad.errors;
    const maxStallMs = Math.max(...phases.map((p) => p.loopDelayMaxMs));
    const startupRows = [
      ['whitelist', 'spawn -> /readyz 200', 'in child: startService', 'in child: process start -> listening', 'RSS at ready', `RSS at rest (${REST_MS / 1000} s on)`, 'peak RSS'],
      ...[
        { ...small.startup, tenants: SMALL },
        { ...large.startup, tenants: LARGE },
      ].map((s) => [
        `${s.tenants.toLocaleString('en-US')} tenants`,
        `${s.readyMs.toFixed(0)} ms`,
        `${s.startServiceMs.toFixed(0)} ms`,
        `${s.sinceProcessStartMs.toFixed(0)} ms`,
        mib(s.rss),
        mib(s.rssAtRest),
        mib(s.hwm),
      ]),
    ];
    const steadyRows = [
      ['forward-auth, 64 tenants via X-Forwarded-For', 'req/s', 'p50 ms', 'p99 ms', 'failed'],
      ...[
        [`${SMALL} tenants`, steadySmall],
        [`${LARGE.toLocaleString('en-US')} tenants`, steadyLarge],
      ].map(([label, r]) => {
        const result = r as LoadResult;
        return [label as string, thousands(result.rps), fixed(result.p50Ms, 2), fixed(result.p99Ms, 2), String(result.non2xx + result.errors)];
      }),
    ];
    const phaseRows = [
      ['reload under load', 'write -> new version', 'loop delay max', 'loop delay p99', 'longest stall: main thread ran, waited for a CPU', 'longest own block'],
      ...phases.map((p) => [
        p.trigger,
        `${p.landMs.toFixed(0)} ms`,
        `${p.loopDelayMaxMs.toFixed(1)} ms`,
        `${p.loopDelayP99Ms.toFixed(1)} ms`,
        describeGap(p.longest),
        describeGap(p.longestOwn),
      ]),
    ];
    const text = [
      `100k whitelist: ${LARGE.toLocaleString('en-US')} tenants, ${mib(largeText.length)} file; oingate forward-auth, OINGATE_LOG_LEVEL=warn, trusted proxy 127.0.0.0/8.`,
      '',
      serveTable(serve),
      '',
      table(startupRows, new Set([1, 2, 3, 4, 5, 6])),
      '',
      table(steadyRows, new Set([1, 2, 3, 4])),
      '',
      table(phaseRows, new Set([1, 2, 3, 4, 5])),
      '',
      `load during the reloads: ${reloadLoad.seconds.toFixed(1)} s, ${thousands(reloadLoad.ok)} ok, ${reloadLoad.non2xx} non-2xx, ` +
        `${reloadLoad.errors} errors (${reloadLoad.timeouts} timeouts) ${JSON.stringify(reloadLoad.statusCodes)}; ` +
        `latency p50 ${fixed(reloadLoad.p50Ms, 2)} ms, p99 ${fixed(reloadLoad.p99Ms, 2)} ms, max ${fixed(reloadLoad.maxMs, 1)} ms`,
      `responses per second during the reloads: ${reloadLoad.perSecond.map((n) => thousands(n)).join(' ')}`,
      `memory after the reloads: RSS ${mib(after?.rss)}, peak RSS ${mib(after?.hwm)}`,
      `oingate's own log (warn and above) for the 100k run: ${gateLog}`,
    ].join('\n');
    return {
      fileBytes: largeText.length,
      serve,
      small: { ...small.startup, tenants: SMALL },
      large: { ...large.startup, tenants: LARGE },
      steadySmall,
      steadyLarge,
      reloadLoad,
      phases,
      failed,
      maxStallMs,
      rssAfterReload: after?.rss ?? NaN,
      hwmAfterReload: after?.hwm ?? NaN,
      profiles,
      profileDir,
      text,
    };
  } finally {
    for (const child of children) await child.stop().catch(() => undefined);
    for (const fd of fds) closeSync(fd);
    await rm(dir, { recursive: true, force: true });
  }
}
