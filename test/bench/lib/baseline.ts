/**
 * "Before/after" in one run: BENCH_BASELINE_REF=<git ref> unpacks that
 * commit (git archive, so the repository's worktree list is never touched)
 * into a temporary directory with node_modules linked to this checkout's,
 * and starts oingate from it next to the current tree, on the same
 * whitelist, under the same load. The directory is removed afterwards (also
 * when the bench is interrupted).
 *
 * The baseline is started through its own test/bench/servers/oingate.ts when
 * that commit has one (IPC ready message, as for the current tree), else as
 * `node src/bin.js serve` with OINGATE_* settings, probed until it answers.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync, rmSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchChild, onBenchExit, REPO_ROOT } from './children.ts';
import { ExternalServer, freePort } from './external.ts';

/** What the HTTP bench needs of any server under test. */
export interface RunningServer {
  readonly url: string;
  cpuSeconds(): number;
  rss(): number;
  stop(): Promise<void>;
}

export class BaselineError extends Error {
  readonly code = 'BENCH_BASELINE';
}

const BENCH_SERVER = 'test/bench/servers/oingate.ts';

function git(args: string[]): string {
  const result = spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (result.status !== 0) throw new BaselineError(`git ${args.join(' ')} failed: ${(result.stderr || String(result.error)).trim()}`);
  return result.stdout.trim();
}

export class BaselineTree {
  /** e.g. "3607feb README: performance figures ...". */
  readonly label: string;
  readonly dir: string;
  readonly #forget: () => void;

  private constructor(label: string, dir: string) {
    this.label = label;
    this.dir = dir;
    this.#forget = onBenchExit(() => rmSync(dir, { recursive: true, force: true }));
  }

  /** Unpacks `ref` (anything git rev-parse takes: a branch, tag, sha, HEAD~3). */
  static async create(ref: string): Promise<BaselineTree> {
    if (ref.startsWith('-')) throw new BaselineError(`BENCH_BASELINE_REF must be a git ref, got "${ref}"`);
    const sha = spawnSync('git', ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (sha.status !== 0) throw new BaselineError(`BENCH_BASELINE_REF "${ref}" is not a commit in this repository`);
    const commit = sha.stdout.trim();
    const label = `${ref} = ${git(['log', '-1', '--format=%h %cI %s', commit])}`;
    const dir = await mkdtemp(join(tmpdir(), 'oingate-bench-baseline-'));
    const tree = new BaselineTree(label, dir);
    try {
      const unpack = spawnSync('sh', ['-c', 'git archive --format=tar "$1" | tar -x -C "$2"', 'unpack', commit, dir], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
      });
      if (unpack.status !== 0) throw new BaselineError(`could not unpack ${ref}: ${unpack.stderr.trim()}`);
      if (!existsSync(join(dir, 'src'))) throw new BaselineError(`${ref} has no src/ directory`);
      await symlink(realpathSync(join(REPO_ROOT, 'node_modules')), join(dir, 'node_modules'), 'dir');
    } catch (error) {
      await tree.remove();
      throw error;
    }
    return tree;
  }

  /** How the baseline is started: its own bench server file, or its CLI. */
  get entry(): string {
    return existsSync(join(this.dir, BENCH_SERVER)) ? BENCH_SERVER : 'src/bin.js serve';
  }

  /**
   * Starts oingate from the baseline tree. `env` are the OINGATE_* settings
   * the current tree gets (listen addresses are replaced with free ports for
   * the CLI, which announces nothing).
   */
  async start(name: string, env: Record<string, string>, stdout: number | 'ignore'): Promise<RunningServer> {
    if (this.entry === BENCH_SERVER) {
      const child = await BenchChild.start({ name, script: BENCH_SERVER, cwd: this.dir, env, stdout });
      return {
        url: child.ready.url,
        cpuSeconds: () => child.cpuSeconds(),
        rss: () => child.memory()?.rss ?? NaN,
        stop: () => child.stop(),
      };
    }
    const [port, adminPort] = [await freePort(), await freePort()];
    return ExternalServer.start({
      name,
      command: process.execPath,
      args: ['src/bin.js', 'serve'],
      cwd: this.dir,
      env: { ...process.env, ...env, OINGATE_LISTEN: `127.0.0.1:${port}`, OINGATE_ADMIN_LISTEN: `127.0.0.1:${adminPort}` },
      url: `http://127.0.0.1:${port}`,
      stdout,
      stopSignal: 'SIGTERM',
      readyTimeoutMs: 60_000,
    });
  }

  async remove(): Promise<void> {
    this.#forget();
    await rm(this.dir, { recursive: true, force: true });
  }
}
