import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Snapshot } from '../model/snapshot.ts';
import { BUILD_VERSION } from './build-info.ts';

/** `oingate_keys_expiring` counts keys whose expiry falls within this window from now. */
export const EXPIRY_WARNING_MS = 14 * 86_400_000;

/**
 * The process's Prometheus metrics, on a registry of its own so several
 * instances (tests) in one process never share counters. Labels come from
 * closed sets (outcome, reason, result), never a secret. The one exception to
 * closed sets is the OIN on the JWKS metrics: a public identifier, bounded by
 * the whitelist, and the only way to tell which tenant's key set is failing.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly decisions = new Counter({
    name: 'oingate_decisions_total',
    help: 'Decisions by outcome (allowed/refused) and precise reason',
    labelNames: ['outcome', 'reason'] as const,
    registers: [this.registry],
  });
  /** The allowed series, resolved once: labels() hashes its arguments on every call. */
  readonly allowed = this.decisions.labels('allowed', 'ok');
  readonly decisionSeconds = new Histogram({
    name: 'oingate_decision_duration_seconds',
    help: 'Time to decide one request, body read included',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers: [this.registry],
  });
  readonly reloads = new Counter({
    name: 'oingate_reloads_total',
    help: 'Whitelist loads accepted (including those that found nothing changed)',
    registers: [this.registry],
  });
  readonly refusedReloads = new Counter({
    name: 'oingate_reloads_refused_total',
    help: 'Whitelist reloads refused; the last good whitelist stayed. cause: invalid (bad content) or unreachable (store unreadable)',
    labelNames: ['cause'] as const,
    registers: [this.registry],
  });
  readonly lastLoadSuccess = new Gauge({
    name: 'oingate_last_load_success_timestamp_seconds',
    help: 'Unix time of the last successful whitelist load (changed or not); 0 before the first',
    registers: [this.registry],
  });
  readonly buildInfo = new Gauge({
    name: 'oingate_build_info',
    help: 'The running oingate version (value 1)',
    labelNames: ['version'] as const,
    registers: [this.registry],
  });
  /** Expiry times (epoch ms) of the enforced whitelist's enabled static keys, ascending. */
  #expiries: readonly number[] = [];
  /** The snapshot #expiries has yet to be taken from: a walk over every tenant, done at the next scrape, not per change. */
  #expiriesFrom: Snapshot | undefined;
  #storeConnected: (() => boolean) | undefined;
  readonly whitelistInfo = new Gauge({
    name: 'oingate_whitelist_info',
    help: 'The enforced whitelist version (value 1)',
    labelNames: ['version'] as const,
    registers: [this.registry],
  });
  readonly tenants = new Gauge({
    name: 'oingate_tenants',
    help: 'Tenants in the enforced whitelist',
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'oingate_upstream_errors_total',
    help: 'Allowed requests the upstream failed (upstream_failed, 502) or did not answer in time (upstream_timeout, 504)',
    labelNames: ['error'] as const,
    registers: [this.registry],
  });

  readonly jwksFetches = new Counter({
    name: 'oingate_jwks_fetches_total',
    help: 'JWKS fetches by tenant and outcome (ok, error: endpoint failed, refused: answer unacceptable)',
    labelNames: ['oin', 'outcome'] as const,
    registers: [this.registry],
  });
  #jwksStatus: (() => Iterable<{ oin: string; ageSeconds: number | null }>) | undefined;
  readonly jwksAge: Gauge<'oin'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'oingate_' });
    this.allowed.inc(0);
    this.reloads.inc(0);
    this.refusedReloads.labels('invalid').inc(0);
    this.refusedReloads.labels('unreachable').inc(0);
    this.lastLoadSuccess.set(0);
    this.buildInfo.labels(BUILD_VERSION).set(1);
    const metrics = this;
    this.jwksAge = new Gauge({
      name: 'oingate_jwks_age_seconds',
      help: "Seconds since each JWKS tenant's key set was last fetched successfully (+Inf: never)",
      labelNames: ['oin'] as const,
      registers: [this.registry],
      collect() {
        const status = metrics.#jwksStatus?.();
        this.reset();
        if (status === undefined) return;
        for (const entry of status) this.labels(entry.oin).set(entry.ageSeconds ?? Infinity);
      },
    });
    new Gauge({
      name: 'oingate_keys_expiring',
      help: 'Enabled static keys of the enforced whitelist that expire within 14 days from now',
      registers: [this.registry],
      // At every scrape, so a key enters the window as time passes, not only on a load.
      collect() {
        if (metrics.#expiriesFrom !== undefined) {
          metrics.#expiries = keyExpiries(metrics.#expiriesFrom);
          metrics.#expiriesFrom = undefined;
        }
        this.set(countInWindow(metrics.#expiries, Date.now(), Date.now() + EXPIRY_WARNING_MS));
      },
    });
  }

  /** A load succeeded, whether or not it changed the whitelist. */
  loadSucceeded(nowMs = Date.now()): void {
    this.reloads.inc();
    this.lastLoadSuccess.set(Math.floor(nowMs / 1000));
  }

  reloadRefused(cause: 'invalid' | 'unreachable'): void {
    this.refusedReloads.labels(cause).inc();
  }

  /** For stores with a connection: `oingate_store_connected` reads `connected` at scrape time. */
  trackStoreConnection(connected: () => boolean): void {
    if (this.#storeConnected === undefined) {
      const metrics = this;
      new Gauge({
        name: 'oingate_store_connected',
        help: 'Whether the PostgreSQL listening connection is up (1) or lost (0)',
        registers: [this.registry],
        collect() {
          this.set(metrics.#storeConnected?.() ? 1 : 0);
        },
      });
    }
    this.#storeConnected = connected;
  }

  /** Where `oingate_jwks_age_seconds` reads each tenant's set age at scrape time. */
  trackJwks(status: () => Iterable<{ oin: string; ageSeconds: number | null }>): void {
    this.#jwksStatus = status;
  }

  jwksFetched(oin: string, outcome: 'ok' | 'error' | 'refused'): void {
    this.jwksFetches.labels(oin, outcome).inc();
  }

  whitelistLoaded(version: string, tenants: number, snapshot?: Snapshot): void {
    this.whitelistInfo.reset();
    this.whitelistInfo.labels(version).set(1);
    this.tenants.set(tenants);
    if (snapshot !== undefined) this.#expiriesFrom = snapshot;
  }
}

/** Sorted once per load, so a scrape costs two binary searches, not a walk over 100k tenants. */
function keyExpiries(snapshot: Snapshot): number[] {
  const out: number[] = [];
  for (const tenant of snapshot.tenants.values()) {
    for (const key of tenant.keys.list) if (key.enabled && key.expiresAt !== undefined) out.push(key.expiresAt);
  }
  return out.sort((a, b) => a - b);
}

/** The first index whose value is at least `value`. */
function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How many values lie in (from, to]: not yet expired, expiring by `to`. */
function countInWindow(sorted: readonly number[], from: number, to: number): number {
  return lowerBound(sorted, to + 1) - lowerBound(sorted, from + 1);
}
