/**
 * Throwaway checkouts: a copy of this repository's sources and build
 * settings in a temporary directory, node_modules linked to this one's, so
 * that a test can build, edit and run one without touching the real src/ or
 * dist/. Removed when the process exits.
 */
import { execFile } from 'node:child_process';
import { realpathSync, rmSync } from 'node:fs';
import { cp, mkdir, mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What a checkout needs to build and run `oingate serve` on the shipped whitelist. */
const COPIED = ['src', 'config', 'sql', 'package.json', 'package-lock.json', 'tsconfig.json'];

const made: string[] = [];
process.once('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A new checkout of `entries` (default: all that building and serving needs), with node_modules linked unless `modules` is false. */
export async function makeCheckout(entries: readonly string[] = COPIED, modules = true): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'oingate-checkout-'));
  made.push(dir);
  for (const entry of entries) {
    await mkdir(dirname(join(dir, entry)), { recursive: true });
    await cp(join(REPO_ROOT, entry), join(dir, entry), { recursive: true });
  }
  if (modules) await symlink(realpathSync(join(REPO_ROOT, 'node_modules')), join(dir, 'node_modules'), 'dir');
  return dir;
}

/** `npm run SCRIPT` in `dir`: its exit code and output. */
export async function npmRun(dir: string, script: string, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('npm', ['run', '--silent', script], { cwd: dir, env, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

let built: Promise<string> | undefined;

/** One checkout built with `npm run build` (tsc takes seconds), shared by the tests that only read it or put back what they change. */
export function builtCheckout(): Promise<string> {
  built ??= (async () => {
    const dir = await makeCheckout();
    const { code, output } = await npmRun(dir, 'build');
    if (code !== 0) throw new Error(`npm run build failed in the throwaway checkout: ${output}`);
    return dir;
  })();
  return built;
}
