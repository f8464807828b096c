/**
 * A server under test that is not a Node child of ours with an IPC channel
 * (nginx, HAProxy, an older oingate started through its CLI): spawned on the
 * server CPU, ready once its URL answers, measured through /proc (the
 * process and its direct children, e.g. nginx's worker), stopped by signal.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';
import { onBenchExit, pinnedCommand } from './children.ts';
import { childPids, cpuSeconds, memory } from './proc.ts';
import { sleep } from './stats.ts';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface ExternalOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Probed with GET until it answers (any status). */
  readonly url: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Where stdout goes: 'ignore' or an open file descriptor. */
  readonly stdout?: 'ignore' | number;
  /** The signal for a graceful stop (nginx and HAProxy: SIGQUIT / SIGUSR1; Node: SIGTERM). */
  readonly stopSignal?: NodeJS.Signals;
  readonly readyTimeoutMs?: number;
}

export class ExternalServer {
  readonly name: string;
  readonly url: string;
  readonly process: ChildProcess;
  readonly #stopSignal: NodeJS.Signals;
  #stderr = '';

  private constructor(options: ExternalOptions) {
    this.name = options.name;
    this.url = options.url;
    this.#stopSignal = options.stopSignal ?? 'SIGTERM';
    const [command, args] = pinnedCommand(options.command, [...options.args]);
    const spawnOptions: SpawnOptions = { stdio: ['ignore', options.stdout ?? 'ignore', 'pipe'], env: options.env ?? process.env };
    if (options.cwd) spawnOptions.cwd = options.cwd;
    this.process = spawn(command, args, spawnOptions);
    const forget = onBenchExit(() => this.process.kill('SIGKILL'));
    this.process.once('exit', forget);
    this.process.stderr?.setEncoding('utf8');
    this.process.stderr?.on('data', (chunk: string) => (this.#stderr = (this.#stderr + chunk).slice(-4000)));
  }

  static async start(options: ExternalOptions): Promise<ExternalServer> {
    const server = new ExternalServer(options);
    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
    for (;;) {
      if (server.process.exitCode !== null || server.process.signalCode !== null) {
        throw new Error(`${server.name} exited before it answered: ${server.stderr}`);
      }
      try {
        await fetch(server.url, { signal: AbortSignal.timeout(500) });
        return server;
      } catch {
        if (Date.now() > deadline) {
          await server.stop();
          throw new Error(`${server.name} did not answer on ${server.url}: ${server.stderr}`);
        }
        await sleep(50);
      }
    }
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** The process and its direct children (the pid is taskset's, which execs the command). */
  pids(): number[] {
    const pid = this.process.pid as number;
    return [pid, ...childPids(pid)];
  }

  cpuSeconds(): number {
    return this.pids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  }

  rss(): number {
    return this.pids().reduce((sum, pid) => sum + (memory(pid)?.rss ?? 0), 0);
  }

  async stop(graceMs = 5_000): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    this.process.kill(this.#stopSignal);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
