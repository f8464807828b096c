/**
 * The pure decision function, no HTTP: decide() with realistic facts (a
 * 400-byte JSON body with the OIN, a valid HS256 token of that tenant, a peer
 * inside its CIDR), for a 10-tenant and a 100,000-tenant snapshot. Each call
 * picks one of 1,000 pre-generated (body, token) pairs at random so no cache
 * of a single tenant hides a cost.
 */
import { createHmac } from 'node:crypto';
import { decide, type DecisionPolicy, type RequestFacts } from '../../src/decision.ts';
import { resolveClientIp } from '../../src/ip/client-ip.ts';
import { DEFAULT_MAX_DEPTH, parseStrictJson } from '../../src/json/strict-json.ts';
import { buildSnapshot, type Snapshot } from '../../src/model/snapshot.ts';
import { decisionPolicy } from '../../src/service.ts';
import { loadSettings } from '../../src/settings.ts';
import { extractBearer, verifyTenantToken } from '../../src/token/verify.ts';
import { bodyFor, clientIpFor, makeTenants, seededRandom, tokenFor, type BenchTenant } from './lib/fixtures.ts';
import { mean, median, percentile } from './lib/stats.ts';

export const PAIRS = 1000;
const CALLS_PER_BATCH = 4000;
const ROUNDS = 25;
const WARMUP_CALLS = 50_000;

export interface Measured {
  readonly tenants: number;
  readonly buildMs: number;
  /** Per-call timings (each call timed on its own), in µs. */
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  /** Mean per call from timing whole batches (no per-call timer), in µs; median over batches. */
  readonly batchMeanUs: number;
}

export interface DecisionBench {
  readonly small: Measured;
  readonly large: Measured;
  /** The 100,000 tenants again, with 100,000 revoked jtis loaded (one per tenant; none of the requests' own). */
  readonly revoked: Measured;
  /** revoked p50 / large p50 */
  readonly ratioRevokedP50: number;
  /** revoked batch mean / large batch mean */
  readonly ratioRevokedBatch: number;
  /** large p50 / small p50 */
  readonly ratioP50: number;
  /** large batch mean / small batch mean */
  readonly ratioBatch: number;
  readonly timerOverheadUs: number;
  readonly breakdown: ReadonlyArray<readonly [string, number]>;
}

interface Fixture {
  readonly tenants: readonly BenchTenant[];
  readonly snapshot: Snapshot;
  readonly facts: readonly RequestFacts[];
  readonly buildMs: number;
}

async function fixture(count: number, policy: DecisionPolicy, seed: number, revokedPerTenant = 0): Promise<Fixture> {
  const tenants = makeTenants(count);
  const revokedTokens = tenants.flatMap((t, i) => Array.from({ length: revokedPerTenant }, (_, k) => ({ jti: `revoked-${i}-${k}`, oin: t.oin })));
  const started = performance.now();
  const snapshot = await buildSnapshot({ tenants, revokedTokens }, { oinPattern: policy.oinPattern });
  const buildMs = performance.now() - started;
  const random = seededRandom(seed);
  const facts: RequestFacts[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const index = Math.floor(random() * count);
    const tenant = tenants[index] as BenchTenant;
    facts.push({
      peer: clientIpFor(index),
      forwardedFor: undefined,
      oinHeader: undefined,
      body: Buffer.from(bodyFor(tenant.oin)),
      // Every token carries a jti, so the revocation lookup is paid wherever a tenant has revocations.
      authorization: `Bearer ${tokenFor(tenant, 7200, { jti: `bench-${i}` })}`,
    });
  }
  const now = Date.now();
  for (const f of facts) {
    const decision = decide(f, snapshot, policy, now);
    if (!decision.allowed) throw new Error(`decision bench fixture refused (${decision.reason}); the bench data is wrong`);
  }
  return { tenants, snapshot, facts, buildMs };
}

/** A fixed random order of pair indexes, shared by both snapshots. */
function order(length: number): Uint16Array {
  const random = seededRandom(7);
  const out = new Uint16Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * PAIRS);
  return out;
}

let sink = 0;

function timedCalls(f: Fixture, policy: DecisionPolicy, sequence: Uint16Array, offset: number, into: number[]): void {
  const now = Date.now();
  const facts = f.facts;
  const snapshot = f.snapshot;
  for (let i = 0; i < CALLS_PER_BATCH; i++) {
    const item = facts[sequence[(offset + i) % sequence.length] as number] as RequestFacts;
    const t0 = performance.now();
    const decision = decide(item, snapshot, policy, now);
    const t1 = performance.now();
    if (decision.allowed) sink++;
    into.push((t1 - t0) * 1000);
  }
}

function batchCall(f: Fixture, policy: DecisionPolicy, sequence: Uint16Array, offset: number): number {
  const now = Date.now();
  const facts = f.facts;
  const snapshot = f.snapshot;
  const t0 = performance.now();
  for (let i = 0; i < CALLS_PER_BATCH; i++) {
    const item = facts[sequence[(offset + i) % sequence.length] as number] as RequestFacts;
    if (decide(item, snapshot, policy, now).allowed) sink++;
  }
  return ((performance.now() - t0) * 1000) / CALLS_PER_BATCH;
}

/** µs per call of `fn`, median of 5 batches. */
function perCall(calls: number, fn: (i: number) => unknown): number {
  const batches: number[] = [];
  for (let b = 0; b < 6; b++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) if (fn(i)) sink++;
    if (b > 0) batches.push(((performance.now() - t0) * 1000) / calls);
  }
  return median(batches);
}

function breakdown(small: Fixture, large: Fixture, policy: DecisionPolicy): Array<readonly [string, number]> {
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const now = Date.now();
  const n = 20_000;
  const facts = large.facts;
  const at = (i: number) => facts[i % PAIRS] as RequestFacts;
  const tenantOf = (i: number) => large.snapshot.tenants.get(`${(JSON.parse(at(i).body!.toString()) as { oin: string }).oin}`)!;
  const keysByPair = facts.map((_, i) => tenantOf(i).keys);
  const tokens = facts.map((f) => extractBearer(f.authorization) as string);
  const signingInputs = tokens.map((t) => t.slice(0, t.lastIndexOf('.')));
  const keyObjects = keysByPair.map((k) => k.list[0]!.key);
  const texts = facts.map((f) => utf8.decode(f.body));
  const oins = facts.map((f) => (JSON.parse(f.body!.toString()) as { oin: string }).oin);
  const smallOins = small.facts.map((f) => (JSON.parse(f.body!.toString()) as { oin: string }).oin);
  return [
    ['resolveClientIp (peer only)', perCall(n, (i) => resolveClientIp(at(i).peer, undefined, policy.trustedProxies).ok)],
    ['TextDecoder(fatal).decode of the 400-byte body', perCall(n, (i) => utf8.decode(at(i).body).length)],
    ['parseStrictJson of the 400-byte body', perCall(n, (i) => parseStrictJson(texts[i % PAIRS]!, { maxDepth: DEFAULT_MAX_DEPTH }) !== null)],
    ['JSON.parse of the same body (reference)', perCall(n, (i) => JSON.parse(texts[i % PAIRS]!) !== null)],
    ['tenants.get(oin), 10 tenants', perCall(n, (i) => small.snapshot.tenants.get(smallOins[i % PAIRS]!) !== undefined)],
    ['tenants.get(oin), 100,000 tenants', perCall(n, (i) => large.snapshot.tenants.get(oins[i % PAIRS]!) !== undefined)],
    ['verifyTenantToken (HS256, whole)', perCall(n, (i) => verifyTenantToken(tokens[i % PAIRS], keysByPair[i % PAIRS]!, policy.token, now).ok)],
    ['createHmac(sha256).update().digest() alone', perCall(n, (i) => createHmac('sha256', keyObjects[i % PAIRS]!).update(signingInputs[i % PAIRS]!, 'latin1').digest().length)],
    ['decide() whole (100,000 tenants, batch mean)', perCall(n, (i) => decide(at(i), large.snapshot, policy, now).allowed)],
  ];
}

function summarise(f: Fixture, times: number[], batchMeans: number[]): Measured {
  return {
    tenants: f.tenants.length,
    buildMs: f.buildMs,
    p50Us: percentile(times, 50),
    p90Us: percentile(times, 90),
    p99Us: percentile(times, 99),
    batchMeanUs: median(batchMeans),
  };
}

export async function benchDecision(log: (line: string) => void): Promise<DecisionBench> {
  const policy = decisionPolicy(loadSettings({ OINGATE_LOG_LEVEL: 'silent' }));
  log('decision: building 10-tenant and 100,000-tenant snapshots in-process ...');
  const small = await fixture(10, policy, 1);
  const large = await fixture(100_000, policy, 2);
  const revoked = await fixture(100_000, policy, 2, 1);
  log(
    `decision: snapshots built in ${small.buildMs.toFixed(0)} ms, ${large.buildMs.toFixed(0)} ms and ` +
      `${revoked.buildMs.toFixed(0)} ms with 100,000 revocations (in-process buildSnapshot, no file)`,
  );
  const sequence = order(65_536);

  // Timer cost, to read per-call figures against.
  const overhead: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const t0 = performance.now();
    const t1 = performance.now();
    overhead.push((t1 - t0) * 1000);
  }

  for (let i = 0; i < WARMUP_CALLS; i += CALLS_PER_BATCH) {
    batchCall(small, policy, sequence, i);
    batchCall(large, policy, sequence, i);
    batchCall(revoked, policy, sequence, i);
  }

  const times = { small: [] as number[], large: [] as number[], revoked: [] as number[] };
  const batches = { small: [] as number[], large: [] as number[], revoked: [] as number[] };
  const fixtures = { small, large, revoked };
  for (let round = 0; round < ROUNDS; round++) {
    const offset = round * CALLS_PER_BATCH;
    // Rotate which goes first, so drift and GC land on all alike.
    const all = ['small', 'large', 'revoked'] as const;
    const sides = [0, 1, 2].map((k) => all[(round + k) % 3]!);
    for (const side of sides) {
      const f = fixtures[side];
      timedCalls(f, policy, sequence, offset, times[side]);
      batches[side].push(batchCall(f, policy, sequence, offset));
    }
  }
  const smallResult = summarise(small, times.small, batches.small);
  const largeResult = summarise(large, times.large, batches.large);
  const revokedResult = summarise(revoked, times.revoked, batches.revoked);
  log('decision: component breakdown ...');
  const parts = breakdown(small, large, policy);
  if (sink < 0) log(String(sink));
  return {
    small: smallResult,
    large: largeResult,
    revoked: revokedResult,
    ratioRevokedP50: revokedResult.p50Us / largeResult.p50Us,
    ratioRevokedBatch: revokedResult.batchMeanUs / largeResult.batchMeanUs,
    ratioP50: largeResult.p50Us / smallResult.p50Us,
    ratioBatch: largeResult.batchMeanUs / smallResult.batchMeanUs,
    timerOverheadUs: mean(overhead),
    breakdown: parts,
  };
}
