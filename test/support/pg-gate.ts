/**
 * Test harness for the PostgreSQL store: a real oingate on loopback ports fed
 * from a `postgres://` store, with its log captured, and small SQL helpers
 * that change the store's rows the way an operator would (plain SQL on a
 * `pg.Client`, never through oingate).
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { expect } from 'chai';
import { buildSnapshot } from '../../src/model/snapshot.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { startService, type Service } from '../../src/service.ts';
import { loadSettings } from '../../src/settings.ts';
import { migrate } from '../../src/store/postgres/migrate.ts';
import { PostgresSource } from '../../src/store/postgres/source.ts';
import { LogCapture, send, type TenantSpec } from './gate.ts';
import { startTestDatabase, type TestDatabase } from './postgres.ts';

/** The repository's root directory (where `src/bin.js` and `sql/` live). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

/** A running oingate on a PostgreSQL store: startGate's Gate without the file functions. */
export interface PgGate {
  readonly service: Service;
  readonly url: string;
  readonly adminUrl: string;
  readonly logs: LogCapture;
  close(): Promise<void>;
}

/**
 * Starts oingate with `OINGATE_STORE` set to `storeUrl`. `env` holds extra
 * OINGATE_* settings; listeners default to loopback port 0. The store may be
 * down: the gate then starts not ready, as the real one does.
 */
export async function startPgGate(storeUrl: string, env: Record<string, string> = {}): Promise<PgGate> {
  const settings = loadSettings({
    OINGATE_LISTEN: '127.0.0.1:0',
    OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
    OINGATE_STORE: storeUrl,
    OINGATE_LOG_LEVEL: 'info',
    ...env,
  });
  const logs = new LogCapture();
  const service = await startService(settings, { logger: createLogger(settings.logLevel, logs) });
  return {
    service,
    url: service.publicUrl,
    adminUrl: service.adminUrl,
    logs,
    close: () => service.close(1_000),
  };
}

/** The `/readyz` body. */
export interface ReadyBody {
  ready: boolean;
  store: string;
  version: string | null;
  tenants: number;
  loadedAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  /** PostgreSQL: whether the listening connection is up. */
  storeConnected?: boolean;
}

export async function readyz(adminUrl: string): Promise<{ status: number; body: ReadyBody; text: string }> {
  const response = await send(adminUrl, { method: 'GET', path: '/readyz' });
  return { status: response.status, body: response.json() as unknown as ReadyBody, text: response.text };
}

export async function metricsText(adminUrl: string): Promise<string> {
  return (await send(adminUrl, { method: 'GET', path: '/metrics' })).text;
}

/** The sum of a metric's samples (all label sets) in Prometheus text; 0 when absent. */
export async function metricValue(adminUrl: string, name: string): Promise<number> {
  const text = await metricsText(adminUrl);
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match && match[1] === name) sum += Number(match[3]);
  }
  return sum;
}

/** A client whose lost connection is reported by its next query, not by a crash. */
export async function connectStore(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'oingate-test' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** The error PostgreSQL refuses `sql` with; fails the test when the statement succeeds. */
export async function refusal(client: pg.ClientBase, sql: string, params: unknown[] = []): Promise<{ code?: string; constraint?: string }> {
  const error = await client.query(sql, params).then(
    () => null,
    (e: unknown) => e as { code?: string; constraint?: string },
  );
  expect(error, `${sql} ${JSON.stringify(params)} should be refused`).to.not.equal(null);
  return error as { code?: string; constraint?: string };
}

/** Applies `sql/` to the database (what `oingate migrate` does). */
export async function migrateStore(url: string): Promise<void> {
  await migrate(url, SQL_DIR);
}

/** A fresh database with `sql/` applied, and a client on it. */
export interface MigratedStore {
  readonly url: string;
  readonly client: pg.Client;
}

/**
 * For a describe block: a before() hook opens a MigratedStore, an after()
 * hook ends the client and drops the database. Read its fields in tests.
 */
export function useMigratedStore(): MigratedStore {
  let db: TestDatabase | undefined;
  let opened: MigratedStore | undefined;
  before(async function () {
    db = await startTestDatabase();
    const url = await db.createDatabase();
    await migrateStore(url);
    opened = { url, client: await connectStore(url) };
  });
  after(async function () {
    await opened?.client.end();
    await db?.destroy();
  });
  const get = (): MigratedStore => {
    if (opened === undefined) throw new Error('useMigratedStore: read it in a test, after its before() hook');
    return opened;
  };
  return {
    get url() {
      return get().url;
    },
    get client() {
      return get().client;
    },
  };
}

/** Applies only the `sql/` files named before `version` (e.g. "002"), as a database made before it existed. */
export async function migrateBefore(url: string, version: string): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'oingate-sql-'));
  try {
    for (const file of await readdir(SQL_DIR)) {
      if (file.endsWith('.sql') && file < version) await copyFile(path.join(SQL_DIR, file), path.join(dir, file));
    }
    await migrate(url, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs `fn` between BEGIN and COMMIT; rolls back when it throws. */
export async function transaction<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export type KeySpec = Record<string, unknown> & { kid: string; alg: string };

export async function insertKey(client: pg.ClientBase, oin: string, key: KeySpec): Promise<void> {
  await client.query(
    `INSERT INTO oingate.tenant_keys (oin, kid, alg, secret, public_key, enabled, not_before, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      oin,
      key.kid,
      key.alg,
      key['secret'] ?? null,
      key['publicKey'] ?? null,
      key['enabled'] ?? true,
      key['notBefore'] ?? null,
      key['expiresAt'] ?? null,
    ],
  );
}

export async function deleteKey(client: pg.ClientBase, oin: string, kid: string): Promise<void> {
  await client.query('DELETE FROM oingate.tenant_keys WHERE oin = $1 AND kid = $2', [oin, kid]);
}

export async function insertCidr(client: pg.ClientBase, oin: string, cidr: string): Promise<void> {
  await client.query('INSERT INTO oingate.tenant_cidrs (oin, cidr) VALUES ($1, $2)', [oin, cidr]);
}

export async function deleteCidr(client: pg.ClientBase, oin: string, cidr: string): Promise<void> {
  await client.query('DELETE FROM oingate.tenant_cidrs WHERE oin = $1 AND cidr = $2::cidr', [oin, cidr]);
}

/**
 * Inserts a tenant's row, CIDRs and keys as separate statements, without a
 * transaction of its own: for use inside one the caller holds.
 */
export async function insertTenantRows(client: pg.ClientBase, tenant: TenantSpec): Promise<void> {
  await client.query('INSERT INTO oingate.tenants (oin, name, enabled, jwks_uri) VALUES ($1, $2, $3, $4)', [
    tenant.oin,
    tenant.name ?? '',
    tenant.enabled ?? true,
    tenant.jwksUri ?? null,
  ]);
  for (const cidr of tenant.cidrs) await insertCidr(client, tenant.oin, cidr);
  for (const key of tenant.keys ?? []) await insertKey(client, tenant.oin, key as KeySpec);
}

/** Adds a tenant with its CIDRs and keys in one transaction. */
export async function addTenant(client: pg.ClientBase, tenant: TenantSpec): Promise<void> {
  await transaction(client, () => insertTenantRows(client, tenant));
}

/** Deletes a tenant; its CIDRs and keys go with it (ON DELETE CASCADE). */
export async function removeTenant(client: pg.ClientBase, oin: string): Promise<void> {
  await client.query('DELETE FROM oingate.tenants WHERE oin = $1', [oin]);
}

export async function setTenantEnabled(client: pg.ClientBase, oin: string, enabled: boolean): Promise<void> {
  await client.query('UPDATE oingate.tenants SET enabled = $2 WHERE oin = $1', [oin, enabled]);
}

/**
 * The version digest of what the store holds now, computed the way a gate
 * with the default OIN pattern computes it (one load, then buildSnapshot).
 */
export async function storeVersion(url: string): Promise<string> {
  const source = new PostgresSource({ connectionString: url, resyncSeconds: 0 });
  try {
    return (await buildSnapshot(await source.load(), { oinPattern: /^[0-9]{20}$/u })).version;
  } finally {
    await source.close();
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `oingate ARGS` as a user would: a child process from the repository root. */
export function oingate(args: string[], store: string, env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['src/bin.js', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, OINGATE_STORE: store, OINGATE_LOG_LEVEL: 'silent', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
