/**
 * Every server under test runs in a child process of its own, pinned to the
 * server core when taskset is available, talking to the bench over IPC:
 * it sends { type: 'ready', ... } once listening, answers { type: 'request' }
 * messages, and exits (writing its CPU profile, if any) on { type: 'stop' }.
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, memory } from './proc.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Pinning {
  /** CPU list for servers under test (taskset -c). */
  readonly server: string;
  /** CPU list the bench process (load generator) was moved to. */
  readonly loadgen: string;
}

let pinning: Pinning | undefined;
let pinningNote = 'not pinned';

/**
 * With taskset and at least two CPUs: the bench (autocannon) on CPU 0, every
 * server under test on CPU 1. Returns a one-line description for the report.
 */
export function setUpPinning(cpuCount: number): string {
  const probe = spawnSync('taskset', ['-V'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    pinningNote = 'not pinned: taskset not found (util-linux); load generator and servers share all cores';
    return pinningNote;
  }
  if (cpuCount < 2) {
    pinningNote = 'not pinned: fewer than 2 CPUs';
    return pinningNote;
  }
  const self = spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { encoding: 'utf8' });
  if (self.status !== 0) {
    pinningNote = `not pinned: taskset failed (${self.stderr.trim()})`;
    return pinningNote;
  }
  pinning = { server: '1', loadgen: '0' };
  pinningNote = 'load generator (this process) on CPU 0; every server under test (and the upstream) on CPU 1';
  return pinningNote;
}

export function currentPinning(): { pinning: Pinning | undefined; note: string } {
  return { pinning, note: pinningNote };
}

/** Prefix for a command so it runs on the server CPU. */
export function pinnedCommand(command: string, args: string[]): [string, string[]] {
  return pinning ? ['taskset', ['-c', pinning.server, command, ...args]] : [command, args];
}

export interface ChildOptions {
  readonly name: string;
  /** Script path relative to `cwd`. */
  readonly script: string;
  /** The tree the child runs in (default: this repository; another for a baseline). */
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  /** Where the child's stdout goes: 'ignore' or an open file descriptor. */
  readonly stdout?: 'ignore' | number;
  /** When set, the child runs with --cpu-prof into this directory. */
  readonly profileDir?: string;
  readonly readyTimeoutMs?: number;
}

export interface ReadyMessage {
  readonly type: 'ready';
  readonly url: string;
  readonly adminUrl?: string;
  /** ms from process start (performance.timeOrigin) to listening, as the child saw it. */
  readonly sinceProcessStartMs?: number;
  /** ms the child spent in startService. */
  readonly startServiceMs?: number;
}

const running = new Set<BenchChild>();
const cleanups = new Set<() => void>();
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  const killAll = () => {
    for (const child of running) {
      try {
        child.process.kill('SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const cleanup of cleanups) cleanup();
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

/**
 * Runs `cleanup` (synchronous) when the bench exits or is interrupted, so no
 * server or temporary tree outlives it. Returns the function that unregisters it.
 */
export function onBenchExit(cleanup: () => void): () => void {
  installExitHook();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

export class BenchChild {
  readonly name: string;
  readonly process: ChildProcess;
  readonly spawnedAt: number;
  readonly profileDir: string | undefined;
  ready!: ReadyMessage;
  #stderr = '';
  #nextId = 1;
  #pending = new Map<number, (reply: Record<string, unknown>) => void>();
  #exited: Promise<number | null>;

  private constructor(options: ChildOptions) {
    installExitHook();
    this.name = options.name;
    this.profileDir = options.profileDir;
    const nodeArgs: string[] = [];
    if (options.profileDir) {
      mkdirSync(options.profileDir, { recursive: true });
      nodeArgs.push('--cpu-prof', '--cpu-prof-dir', options.profileDir);
    }
    nodeArgs.push('--import', 'tsx', options.script);
    const [command, args] = pinnedCommand(process.execPath, nodeArgs);
    const stdio: StdioOptions = ['ignore', options.stdout ?? 'ignore', 'pipe', 'ipc'];
    this.spawnedAt = performance.now();
    this.process = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio,
    });
    running.add(this);
    this.process.stderr?.setEncoding('utf8');
    this.process.stderr?.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
    });
    this.process.on('message', (message: Record<string, unknown>) => {
      if (message['type'] === 'reply') {
        const id = message['id'] as number;
        this.#pending.get(id)?.(message);
        this.#pending.delete(id);
      }
    });
    this.#exited = new Promise((resolve) => {
      this.process.once('exit', (code) => {
        running.delete(this);
        resolve(code);
      });
    });
  }

  static async start(options: ChildOptions): Promise<BenchChild> {
    const child = new BenchChild(options);
    const timeoutMs = options.readyTimeoutMs ?? 60_000;
    child.ready = await new Promise<ReadyMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.process.kill('SIGKILL');
        reject(new Error(`${child.name}: not ready after ${timeoutMs} ms\n${child.stderr}`));
      }, timeoutMs);
      child.process.on('message', (message: Record<string, unknown>) => {
        if (message['type'] === 'ready') {
          clearTimeout(timer);
          resolve(message as unknown as ReadyMessage);
        }
      });
      void child.#exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${child.name}: exited with code ${code} before it was ready\n${child.stderr}`));
      });
    });
    return child;
  }

  get pid(): number {
    return this.process.pid as number;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Asks the child something over IPC (e.g. its event-loop delay histogram). */
  request(op: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name}: no reply to ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.process.send({ type: 'request', id, op });
    });
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  memory(): { rss: number; hwm: number } | undefined {
    return memory(this.pid);
  }

  /** Graceful stop (the child exits, writing its CPU profile); SIGKILL after a grace period. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    try {
      this.process.send({ type: 'stop' });
    } catch {
      this.process.kill('SIGTERM');
    }
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }
}
