/**
 * Propagation bench for the PostgreSQL store: how long from COMMIT until
 * every one of three oingate instances on one database enforces the change.
 *
 * A throwaway cluster (or a database on OINGATE_TEST_DATABASE_URL), migrated,
 * one tenant with an HS256 key, three in-process gates. Then `changes`
 * transactions alternately add and remove the tenant's CIDR 127.0.0.0/8; each
 * is timed from the moment COMMIT is sent until a real call to each of the
 * three gates (polled every ~2 ms) gets the new answer (200 after an add,
 * 403 after a remove), after two warm-up changes. With `tenants`, that many
 * other tenants (a /24 and an HS256 key each) are in the store too, written
 * by one INSERT ... SELECT.
 *
 * With `kind: 'revocation'` each change instead revokes the measured
 * tenant's token (a row in oingate.revoked_tokens) or deletes that row
 * again, timed until every gate answers 401, or 200 again; and every other
 * tenant has one revoked token of its own, so the store holds as many
 * revocations as tenants.
 *
 *   npx tsx test/bench/propagation.ts [changes] [tenants] [cidr|revocation]
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type pg from 'pg';
import { call, signToken } from '../support/gate.ts';
import {
  addTenant,
  connectStore,
  deleteCidr,
  insertCidr,
  migrateStore,
  startPgGate,
  transaction,
  type PgGate,
} from '../support/pg-gate.ts';
import { startTestDatabase, type TestDatabase } from '../support/postgres.ts';
import { serveStarts, type ServeStart } from './lib/serve-ready.ts';

export interface PropagationResult {
  /** Median COMMIT-to-all-three-enforcing time, ms. */
  medianMs: number;
  /** Slowest change, ms. */
  worstMs: number;
  /** Every change's time in ms, in the order made. */
  samples: number[];
  /** Per instance, startService's time until it listened: the first full load of the store included. */
  startMs: number[];
  /** `oingate serve` itself on the store: spawn -> /readyz 200, on every CPU and pinned to one. */
  serve: { unpinned: ServeStart[]; pinned: ServeStart[] };
}

// Starts of `oingate serve` per placement.
const SERVE_ROUNDS = 2;

const INSTANCES = 3;
const POLL_MS = 2;
const GIVE_UP_MS = 10_000;
const OIN = '00000003000000000001';
const KID = 'prop-1';
const SECRET = 'propagation-bench-secret-0123456789abcdef';
const CIDR = '127.0.0.0/8';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Polls one gate with a real call until it answers `expected`. */
async function until(gate: PgGate, token: string, expected: number, since: number): Promise<void> {
  for (;;) {
    const { status } = await call(gate.url, { oin: OIN }, token);
    if (status === expected) return;
    if (performance.now() - since > GIVE_UP_MS) {
      throw new Error(`${gate.url} still answers ${status}, not ${expected}, ${GIVE_UP_MS} ms after COMMIT`);
    }
    await sleep(POLL_MS);
  }
}

/** `count` tenants besides the measured one, written by the server itself (seconds for 100k); one revoked token each with `revocations`. */
async function addBackgroundTenants(sql: pg.Client, count: number, revocations: boolean): Promise<void> {
  if (count <= 0) return;
  const oins = `FROM generate_series(1, ${count}) g`;
  await sql.query(`INSERT INTO oingate.tenants (oin, name) SELECT '0000000800' || lpad(g::text, 10, '0'), 'bench ' || g ${oins}`);
  await sql.query(
    `INSERT INTO oingate.tenant_cidrs SELECT '0000000800' || lpad(g::text, 10, '0'), format('%s.%s.%s.0/24', 11 + (g >> 16), (g >> 8) & 255, g & 255)::cidr ${oins}`,
  );
  await sql.query(
    `INSERT INTO oingate.tenant_keys (oin, kid, alg, secret) SELECT '0000000800' || lpad(g::text, 10, '0'), 'k', 'HS256', md5(g::text) || md5('s' || g) ${oins}`,
  );
  if (revocations) {
    await sql.query(
      `INSERT INTO oingate.revoked_tokens (oin, jti, expires_at) SELECT '0000000800' || lpad(g::text, 10, '0'), md5('j' || g), now() + interval '1 day' ${oins}`,
    );
  }
}

export type PropagationKind = 'cidr' | 'revocation';
const JTI = 'propagation-bench-jti';

export async function propagationBench(options: { changes?: number; tenants?: number; kind?: PropagationKind } = {}): Promise<PropagationResult> {
  const changes = options.changes ?? 50;
  const background = options.tenants ?? 0;
  const revoking = options.kind === 'revocation';
  if (!Number.isInteger(changes) || changes < 1) throw new Error(`changes must be a positive whole number, got ${changes}`);
  let cluster: TestDatabase | undefined;
  let sql: pg.Client | undefined;
  const gates: PgGate[] = [];
  try {
    cluster = await startTestDatabase({ private: true });
    const url = await cluster.createDatabase();
    await migrateStore(url);
    sql = await connectStore(url);
    // Known but not allowed from loopback: every gate starts at 403 (allowed, 200, when revocations are measured).
    await addTenant(sql, { oin: OIN, name: 'propagation', cidrs: [revoking ? CIDR : '10.0.0.0/8'], keys: [{ kid: KID, alg: 'HS256', secret: SECRET }] });
    await addBackgroundTenants(sql, background, revoking);
    // The command itself first, while nothing else runs: its start-up is what the ready target is about.
    const serve = await serveStarts(url, SERVE_ROUNDS);
    // One after the other, so that each start's time is its own (the bench's process, not pinned to a CPU of its own).
    const startMs: number[] = [];
    for (let i = 0; i < INSTANCES; i++) {
      const t0 = performance.now();
      gates.push(await startPgGate(url, { OINGATE_LOG_LEVEL: 'error' }));
      startMs.push(performance.now() - t0);
    }

    const now = Math.floor(Date.now() / 1000);
    const token = signToken({ oin: OIN, iat: now, exp: now + 3600, jti: JTI }, SECRET, { algorithm: 'HS256', keyid: KID });
    const started = performance.now();
    const [before, after] = revoking ? [200, 401] : [403, 200];
    await Promise.all(gates.map((g) => until(g, token, before, started)));

    const samples: number[] = [];
    // Two warm-up changes, not counted: each instance's reload after its
    // LISTEN connected (a full one, digest first) may still be running.
    for (let i = -2; i < changes; i++) {
      const add = (i + 2) % 2 === 0;
      const client = sql;
      let committing = 0;
      await transaction(client, async () => {
        if (revoking && add) await client.query(`INSERT INTO oingate.revoked_tokens (oin, jti, reason) VALUES ($1, $2, 'bench')`, [OIN, JTI]);
        else if (revoking) await client.query('DELETE FROM oingate.revoked_tokens WHERE oin = $1 AND jti = $2', [OIN, JTI]);
        else if (add) await insertCidr(client, OIN, CIDR);
        else await deleteCidr(client, OIN, CIDR);
        committing = performance.now();
      });
      await Promise.all(gates.map((g) => until(g, token, add ? after : before, committing)));
      if (i >= 0) samples.push(performance.now() - committing);
    }
    return { medianMs: median(samples), worstMs: Math.max(...samples), samples, startMs, serve };
  } finally {
    await Promise.all(gates.map((g) => g.close().catch(() => undefined)));
    await sql?.end().catch(() => undefined);
    await cluster?.destroy().catch(() => undefined);
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (invokedDirectly) {
  const changes = process.argv[2] === undefined ? undefined : Number(process.argv[2]);
  const tenants = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
  const kind = process.argv[4] === 'revocation' ? 'revocation' : 'cidr';
  try {
    const result = await propagationBench({ ...(changes === undefined ? {} : { changes }), ...(tenants === undefined ? {} : { tenants }), kind });
    const ms = (n: number) => `${n.toFixed(1)} ms`;
    console.log(
      `PostgreSQL propagation of ${kind === 'revocation' ? 'a revocation' : 'a CIDR change'}, COMMIT to all ${INSTANCES} instances enforcing, ${result.samples.length} changes, ` +
        `${1 + (tenants ?? 0)} tenants: ` +
        `median ${ms(result.medianMs)}, worst ${ms(result.worstMs)}`,
    );
    console.log(`each, in order: ${result.samples.map((n) => n.toFixed(0)).join(' ')} ms`);
  } catch (error) {
    console.error(`propagation bench failed: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
