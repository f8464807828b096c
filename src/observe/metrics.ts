import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Snapshot } from '../model/snapshot.ts';
import { BUILD_VERSION } from './build-info.ts';
import { CounterSeriesSet, FastHistogram, type CounterSeries } from './series.ts';

type DecisionLabel = 'outcome' | 'reason' | 'oin' | 'kid';

/** Proxy mode: what the upstream answered, and how long it took to. */
export interface UpstreamMetrics {
  /** A final answer's status and the seconds from sending the request to its headers. */
  responded(status: number, seconds: number): void;
}

export interface MetricsOptions {
  /** Node's process metrics (default true). */
  readonly processMetrics?: boolean;
  /** OINGATE_METRICS_TENANT_LABELS: decisions and expiring keys carry `oin` and `kid` labels. */
  readonly tenantLabels?: boolean;
}

/** `oingate_keys_expiring` counts keys whose expiry falls within this window from now. */
export const EXPIRY_WARNING_MS = 14 * 86_400_000;

/**
 * The process's Prometheus metrics, on a registry of its own so several
 * instances (tests) in one process never share counters. Labels come from
 * closed sets (outcome, reason, result), never a secret. The one exception to
 * closed sets is the OIN on the JWKS metrics: a public identifier, bounded by
 * the whitelist, and the only way to tell which tenant's key set is failing;
 * and, only with `tenantLabels`, the OIN and kid on decisions and expiring
 * keys, for tenants and kids of the whitelist only (never a caller's value).
 */
export class Metrics {
  readonly registry = new Registry();
  /** Whether decisions and expiring keys carry `oin` and `kid` labels. */
  readonly tenantLabels: boolean;
  readonly #decisionSeries = new CounterSeriesSet<DecisionLabel>();
  readonly decisions: Counter<DecisionLabel>;
  /** The allowed series (with tenant labels: of no tenant), resolved once. */
  readonly allowed: CounterSeries;
  // Each label set's series, resolved once: prom-client's labels() hashes on every call.
  // Without tenant labels, by outcome and reason (the allowed series is made here once too).
  readonly #byOutcomeReason = new Map<string, CounterSeries>();
  readonly #byTenant = { allowed: new Map<string, Map<string, Map<string, CounterSeries>>>(), refused: new Map<string, Map<string, Map<string, CounterSeries>>>() };
  readonly #upstreamErrorSeries = new CounterSeriesSet<'error'>();
  readonly #upstreamErrorByReason = new Map<string, CounterSeries>();
  #upstream: UpstreamMetrics | undefined;
  readonly decisionSeconds = new FastHistogram({
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
  /** The enforced whitelist's enabled static keys that expire, by expiry time (epoch ms) ascending. */
  #expiries: readonly KeyExpiry[] = [];
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
  readonly revokedTokens = new Gauge({
    name: 'oingate_revoked_tokens',
    help: 'Revoked token ids (jti) the enforced whitelist refuses, all tenants together; revocations of expired tokens are not counted',
    registers: [this.registry],
  });
  readonly upstreamErrors: Counter<'error'>;

  readonly jwksFetches = new Counter({
    name: 'oingate_jwks_fetches_total',
    help: 'JWKS fetches by tenant and outcome (ok, error: endpoint failed, refused: answer unacceptable)',
    labelNames: ['oin', 'outcome'] as const,
    registers: [this.registry],
  });
  #jwksStatus: (() => Iterable<{ oin: string; ageSeconds: number | null }>) | undefined;
  readonly jwksAge: Gauge<'oin'>;

  constructor(options: MetricsOptions = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'oingate_' });
    this.tenantLabels = options.tenantLabels === true;
    const decisionSeries = this.#decisionSeries;
    this.decisions = new Counter({
      name: 'oingate_decisions_total',
      help: this.tenantLabels
        ? 'Decisions by outcome (allowed/refused), precise reason, tenant (oin) and verified key (kid)'
        : 'Decisions by outcome (allowed/refused) and precise reason',
      labelNames: (this.tenantLabels ? ['outcome', 'reason', 'oin', 'kid'] : ['outcome', 'reason']) as DecisionLabel[],
      registers: [this.registry],
      collect() {
        decisionSeries.flush();
      },
    });
    decisionSeries.bind(this.decisions);
    this.allowed = this.decision('allowed', 'ok');
    const upstreamErrorSeries = this.#upstreamErrorSeries;
    this.upstreamErrors = new Counter({
      name: 'oingate_upstream_errors_total',
      help: 'Allowed requests the upstream failed (upstream_failed, 502) or did not answer in time (upstream_timeout, 504)',
      labelNames: ['error'] as const,
      registers: [this.registry],
      collect() {
        upstreamErrorSeries.flush();
      },
    });
    upstreamErrorSeries.bind(this.upstreamErrors);
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
    const tenantLabels = this.tenantLabels;
    new Gauge({
      name: 'oingate_keys_expiring',
      help: tenantLabels
        ? 'Enabled static keys of the enforced whitelist that expire within 14 days from now (1 per oin and kid)'
        : 'Enabled static keys of the enforced whitelist that expire within 14 days from now',
      labelNames: tenantLabels ? ['oin', 'kid'] : [],
      registers: [this.registry],
      // At every scrape, so a key enters the window as time passes, not only on a load.
      collect() {
        if (metrics.#expiriesFrom !== undefined) {
          metrics.#expiries = keyExpiries(metrics.#expiriesFrom);
          metrics.#expiriesFrom = undefined;
        }
        const now = Date.now();
        const from = lowerBound(metrics.#expiries, now + 1);
        const to = lowerBound(metrics.#expiries, now + EXPIRY_WARNING_MS + 1);
        if (!tenantLabels) {
          this.set(to - from);
          return;
        }
        this.reset();
        for (let i = from; i < to; i++) {
          const key = metrics.#expiries[i] as KeyExpiry;
          this.set({ oin: key.oin, kid: key.kid }, 1);
        }
      },
    });
  }

  /**
   * The series one decision counts in, resolved once per label set. `oin`
   * and `kid` are used only with tenant labels, and must then be a tenant
   * and a kid of the whitelist (or empty), never a caller's unchecked value.
   */
  decision(outcome: 'allowed' | 'refused', reason: string, oin = '', kid = ''): CounterSeries {
    if (!this.tenantLabels) {
      if (outcome === 'allowed' && this.allowed !== undefined) return this.allowed;
      const key = `${outcome} ${reason}`;
      let series = this.#byOutcomeReason.get(key);
      if (series === undefined) {
        series = this.#decisionSeries.create({ outcome, reason });
        this.#byOutcomeReason.set(key, series);
      }
      return series;
    }
    const byReason = this.#byTenant[outcome];
    let byOin = byReason.get(reason);
    if (byOin === undefined) byReason.set(reason, (byOin = new Map()));
    let byKid = byOin.get(oin);
    if (byKid === undefined) byOin.set(oin, (byKid = new Map()));
    let series = byKid.get(kid);
    if (series === undefined) {
      series = this.#decisionSeries.create({ outcome, reason, oin, kid });
      byKid.set(kid, series);
    }
    return series;
  }

  /** An allowed request the upstream failed: `error` is the refusal's reason (upstream_failed, upstream_timeout...). */
  upstreamFailed(error: string): void {
    let series = this.#upstreamErrorByReason.get(error);
    if (series === undefined) {
      series = this.#upstreamErrorSeries.create({ error });
      this.#upstreamErrorByReason.set(error, series);
    }
    series.inc();
  }

  /**
   * Proxy mode's upstream latency histogram and status-class counter,
   * registered on the first call, so that forward-auth mode shows neither.
   */
  upstream(): UpstreamMetrics {
    if (this.#upstream !== undefined) return this.#upstream;
    const seconds = new FastHistogram({
      name: 'oingate_upstream_duration_seconds',
      help: 'Proxy mode: seconds from sending an allowed request upstream to the headers of its answer',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [this.registry],
    });
    const classSeries = new CounterSeriesSet<'class'>();
    const responses = new Counter({
      name: 'oingate_upstream_responses_total',
      help: "Proxy mode: the upstream's answers by status class (2xx, 3xx, 4xx, 5xx; other for anything else)",
      labelNames: ['class'] as const,
      registers: [this.registry],
      collect() {
        classSeries.flush();
      },
    });
    classSeries.bind(responses);
    // Index: the status's hundreds; 0 stands for any status outside 200-599.
    const byClass = ['other', '', '2xx', '3xx', '4xx', '5xx'].map((name) => (name === '' ? undefined : classSeries.create({ class: name })));
    const other = byClass[0] as CounterSeries;
    this.#upstream = {
      responded(status, elapsed) {
        seconds.observe(elapsed);
        (byClass[Math.floor(status / 100)] ?? other).inc();
      },
    };
    return this.#upstream;
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

  /**
   * TLS (contract §9): the server certificate's expiry and the CRLs' next
   * update, read at scrape time; handshake failures and refused TLS file
   * reloads as counters. Registered only when TLS or client CAs are on.
   */
  trackTls(status: () => TlsMetricsStatus): TlsCounters {
    const timestamp = (name: string, help: string, read: (now: TlsMetricsStatus) => string | null): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const at = read(status());
          if (at === null) this.reset();
          else this.set(Date.parse(at) / 1000);
        },
      });
    };
    timestamp('oingate_tls_certificate_expiry_timestamp_seconds', "Unix time of the notAfter of the public listener's server certificate in use", (now) => now.certificateNotAfter);
    timestamp(
      'oingate_tls_crl_next_update_timestamp_seconds',
      'Unix time of the earliest nextUpdate of the client-certificate CRLs in use; a CRL past it refuses every certificate it covers',
      (now) => now.crlNextUpdate,
    );
    new Gauge({
      name: 'oingate_tls_material_error',
      help: 'Whether the last reload of a TLS file was refused (1; the last good material stays) or every file loads (0)',
      registers: [this.registry],
      collect() {
        this.set(status().lastError === null ? 0 : 1);
      },
    });
    const handshakeFailures = new Counter({
      name: 'oingate_tls_handshake_failures_total',
      help: 'TLS handshakes on the public listener that failed (a bad client certificate does not fail the handshake)',
      registers: [this.registry],
    });
    const refusedReloads = new Counter({
      name: 'oingate_tls_reloads_refused_total',
      help: 'Changed TLS files (server pair, client CAs, CRLs) that were refused; the last good material stayed',
      registers: [this.registry],
    });
    handshakeFailures.inc(0);
    refusedReloads.inc(0);
    return { handshakeFailed: () => handshakeFailures.inc(), reloadRefused: () => refusedReloads.inc() };
  }

  jwksFetched(oin: string, outcome: 'ok' | 'error' | 'refused'): void {
    this.jwksFetches.labels(oin, outcome).inc();
  }

  whitelistLoaded(version: string, tenants: number, snapshot?: Snapshot): void {
    this.whitelistInfo.reset();
    this.whitelistInfo.labels(version).set(1);
    this.tenants.set(tenants);
    if (snapshot !== undefined) {
      this.revokedTokens.set(snapshot.revokedTokens);
      this.#expiriesFrom = snapshot;
    }
  }
}

/** What the TLS gauges read at scrape time (the /readyz `tls` body). */
export interface TlsMetricsStatus {
  readonly certificateNotAfter: string | null;
  readonly crlNextUpdate: string | null;
  readonly lastError: string | null;
}

export interface TlsCounters {
  handshakeFailed(): void;
  reloadRefused(): void;
}

interface KeyExpiry {
  readonly at: number;
  readonly oin: string;
  readonly kid: string;
}

/** Sorted once per load, so a scrape costs two binary searches, not a walk over 100k tenants. */
function keyExpiries(snapshot: Snapshot): KeyExpiry[] {
  const out: KeyExpiry[] = [];
  for (const tenant of snapshot.tenants.values()) {
    for (const key of tenant.keys.list) {
      if (key.enabled && key.expiresAt !== undefined) out.push({ at: key.expiresAt, oin: tenant.oin, kid: key.kid });
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

/** The first index whose expiry is at least `value`; the keys in (from, to] are those from lowerBound(from + 1) to lowerBound(to + 1). */
function lowerBound(sorted: readonly KeyExpiry[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as KeyExpiry).at < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
