/**
 * Throwaway PostgreSQL servers for tests.
 *
 * By default a private cluster is made with the server binaries of the
 * Debian `postgresql` package (initdb in a temp dir, trust auth, a free port
 * on 127.0.0.1). With OINGATE_TEST_DATABASE_URL set, that server is used
 * instead; it cannot be stopped or started, so tests that need that fail
 * with a message saying so.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);

export interface TestDatabase {
  /** URL of the cluster's `postgres` database. */
  url: string;
  /** Stops the server (pg_ctl stop -m fast). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops the server and removes its files (or drops the databases made on a given server). */
  destroy(): Promise<void>;
  /** Creates a fresh empty database on this cluster and returns its URL. */
  createDatabase(): Promise<string>;
}

export interface StartOptions {
  /**
   * A cluster of its own, not shared with other test files: for tests that
   * stop and start the server. Destroy it in an after() hook.
   */
  private?: boolean;
}

const PG_ROOT = '/usr/lib/postgresql';
const all = new Set<Cluster>();
let shared: Promise<TestDatabase> | null = null;
let exitHookInstalled = false;

function findBinDir(): string {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((v) => existsSync(path.join(PG_ROOT, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const version = versions[0];
  if (version === undefined) {
    throw new Error(
      `no ${PG_ROOT}/*/bin/initdb: install PostgreSQL server binaries (Debian package postgresql), ` +
        'or set OINGATE_TEST_DATABASE_URL to a server the tests may create databases on',
    );
  }
  return path.join(PG_ROOT, version, 'bin');
}

const asRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a PostgreSQL binary, as user postgres when we are root. */
function command(bin: string, args: string[]): [string, string[]] {
  return asRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

async function run(bin: string, args: string[]): Promise<void> {
  const [file, argv] = command(bin, args);
  try {
    await execFileAsync(file, argv, { env: { ...process.env, LC_ALL: 'C' }, timeout: 60000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${path.basename(bin)} failed: ${e.stderr || e.stdout || e.message}`.trim());
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not find a free port'));
      });
    });
  });
}

function randomName(): string {
  return `oingate_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function createDatabaseOn(url: string): Promise<string> {
  const name = randomName();
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return name;
}

class Cluster implements TestDatabase {
  url: string;
  private running = false;

  constructor(
    private readonly bin: string,
    private readonly dir: string,
    private readonly port: number,
  ) {
    this.url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  private get data() {
    return path.join(this.dir, 'data');
  }

  async init(): Promise<void> {
    await run(path.join(this.bin, 'initdb'), [
      '-D', this.data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C',
    ]);
  }

  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    try {
      await run(path.join(this.bin, 'pg_ctl'), [
        '-D', this.data, '-l', path.join(this.dir, 'server.log'), '-w', '-t', '30', '-o', options, 'start',
      ]);
    } catch (err) {
      const log = await readFile(path.join(this.dir, 'server.log'), 'utf8').catch(() => '');
      throw new Error(`${(err as Error).message}\n${log.split('\n').slice(-10).join('\n')}`);
    }
    this.running = true;
  }

  async stop(): Promise<void> {
    await run(path.join(this.bin, 'pg_ctl'), ['-D', this.data, '-m', 'fast', '-w', '-t', '30', 'stop']);
    this.running = false;
  }

  async destroy(): Promise<void> {
    all.delete(this);
    if (this.running) await this.stop().catch(() => this.stopNow());
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous, for process exit. */
  stopNow(): void {
    if (this.running) {
      const [file, argv] = command(path.join(this.bin, 'pg_ctl'), ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
      spawnSync(file, argv, { stdio: 'ignore', timeout: 10000 });
      this.running = false;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  async createDatabase(): Promise<string> {
    return withDatabase(this.url, await createDatabaseOn(this.url));
  }
}

/** A server given by OINGATE_TEST_DATABASE_URL: databases only, no stop/start. */
class GivenServer implements TestDatabase {
  private readonly made: string[] = [];
  constructor(readonly url: string) {}

  stop(): Promise<void> {
    return Promise.reject(
      new Error('stop() needs a private cluster: unset OINGATE_TEST_DATABASE_URL to let the tests make their own'),
    );
  }

  start(): Promise<void> {
    return Promise.reject(
      new Error('start() needs a private cluster: unset OINGATE_TEST_DATABASE_URL to let the tests make their own'),
    );
  }

  async createDatabase(): Promise<string> {
    const name = await createDatabaseOn(this.url);
    this.made.push(name);
    return withDatabase(this.url, name);
  }

  async destroy(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('error', () => undefined);
    try {
      await client.connect();
      for (const name of this.made.splice(0)) {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const cluster of all) {
      try {
        cluster.stopNow();
      } catch {
        // best effort
      }
    }
  });
}

async function makeCluster(): Promise<Cluster> {
  const bin = findBinDir();
  // Short path: the socket file name must fit in sun_path (~107 bytes).
  const dir = await mkdtemp(path.join(os.tmpdir(), 'oingate-pg-'));
  if (asRoot()) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gids = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    const uid = Number(ids.stdout.trim());
    const gid = Number(gids.stdout.trim());
    if (ids.status !== 0 || !Number.isInteger(uid)) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error('running as root but there is no user postgres to run the test cluster as');
    }
    chownSync(dir, uid, gid);
  }
  const cluster = new Cluster(bin, dir, await freePort());
  all.add(cluster);
  installExitHook();
  try {
    await cluster.init();
    await cluster.start();
  } catch (err) {
    await cluster.destroy().catch(() => undefined);
    throw err;
  }
  return cluster;
}

/**
 * A test server. Without options: one cluster shared by the whole test
 * process (made on first use, re-made after destroy()). With
 * `{ private: true }`: a cluster of the caller's own.
 */
export function startTestDatabase(options: StartOptions = {}): Promise<TestDatabase> {
  const given = process.env.OINGATE_TEST_DATABASE_URL;
  if (given) return Promise.resolve(new GivenServer(given));
  if (options.private) return makeCluster();
  if (!shared) {
    const made = makeCluster().then((cluster): TestDatabase => {
      const destroy = cluster.destroy.bind(cluster);
      cluster.destroy = async () => {
        if (shared === made) shared = null;
        await destroy();
      };
      return cluster;
    });
    shared = made;
    made.catch(() => {
      if (shared === made) shared = null;
    });
  }
  return shared;
}

/** Stops and removes every cluster this process made. */
export async function destroyAll(): Promise<void> {
  shared = null;
  await Promise.all([...all].map((c) => c.destroy()));
}
