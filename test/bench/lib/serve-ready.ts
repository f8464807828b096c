/**
 * Start-up as an operator sees it: `oingate serve` (src/bin.js, which runs
 * dist/ when it is a build of these sources, else the sources through tsx)
 * spawned with the given store, timed until /readyz answers 200, and its
 * resident memory read a while later, at rest. The bench's other children
 * run the sources through tsx with an IPC channel; this one is the command
 * itself, nothing added.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cpus } from 'node:os';
import { currentPinning, pinnedCommand, REPO_ROOT } from './children.ts';
import { memory } from './proc.ts';

export interface ServeStart {
  /** Spawn to the first /readyz 200. */
  readonly readyMs: number;
  /** Which code ran, from the `oingate listening` line. */
  readonly build: string;
  /** Resident memory `restMs` after ready. */
  readonly rssAtRest: number;
  readonly pinned: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One start of `oingate serve` on `store` (an OINGATE_STORE value), on the
 * server CPU when `pinned` (and pinning is set up), else on every CPU the
 * machine has, as a deployment runs it. Killed afterwards.
 */
export async function serveStart(store: string, options: { pinned: boolean; restMs?: number; timeoutMs?: number }): Promise<ServeStart> {
  const env = {
    ...process.env,
    OINGATE_STORE: store,
    OINGATE_LISTEN: '127.0.0.1:0',
    OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
    OINGATE_LOG_LEVEL: 'info',
  };
  const nodeArgs = ['src/bin.js', 'serve'];
  // The bench moved itself to the load generator's CPU, and a child inherits
  // that: on every CPU means saying so, as much as on the server's one does.
  const pinning = currentPinning().pinning;
  const [command, args] = !pinning
    ? [process.execPath, nodeArgs]
    : options.pinned
      ? pinnedCommand(process.execPath, nodeArgs)
      : ['taskset', ['-c', `0-${cpus().length - 1}`, process.execPath, ...nodeArgs]];
  const spawnedAt = performance.now();
  const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  // Ends a start that never listens (its stdout closes); one that listens but never gets ready is given up below.
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    let listening: { admin: string; build: string } | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      if (!line.includes('"oingate listening"')) continue;
      listening = JSON.parse(line) as { admin: string; build: string };
      break;
    }
    if (!listening) throw new Error(`oingate serve exited before it listened\n${stderr}`);
    clearTimeout(timer);
    for (;;) {
      const response = await fetch(new URL('/readyz', listening.admin));
      await response.arrayBuffer();
      if (response.status === 200) break;
      if (performance.now() - spawnedAt > timeoutMs) throw new Error(`oingate serve was not ready ${timeoutMs} ms after it was spawned\n${stderr}`);
      await sleep(10);
    }
    const readyMs = performance.now() - spawnedAt;
    await sleep(options.restMs ?? 2000);
    // taskset execs node, so the pid is the server's either way.
    const rssAtRest = memory(child.pid!)?.rss ?? NaN;
    return { readyMs, build: listening.build, rssAtRest, pinned: options.pinned && pinning !== undefined };
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  }
}

/** Starts of `oingate serve`, alternately on every CPU and pinned, `rounds` of each. */
export async function serveStarts(store: string, rounds: number): Promise<{ unpinned: ServeStart[]; pinned: ServeStart[] }> {
  const unpinned: ServeStart[] = [];
  const pinned: ServeStart[] = [];
  for (let round = 0; round < rounds; round++) {
    unpinned.push(await serveStart(store, { pinned: false }));
    pinned.push(await serveStart(store, { pinned: true }));
  }
  return { unpinned, pinned };
}

export function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
