import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
    help: 'Whitelist reloads refused as invalid or unreadable; the last good whitelist stayed',
    registers: [this.registry],
  });
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
    this.refusedReloads.inc(0);
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
  }

  /** Where `oingate_jwks_age_seconds` reads each tenant's set age at scrape time. */
  trackJwks(status: () => Iterable<{ oin: string; ageSeconds: number | null }>): void {
    this.#jwksStatus = status;
  }

  jwksFetched(oin: string, outcome: 'ok' | 'error' | 'refused'): void {
    this.jwksFetches.labels(oin, outcome).inc();
  }

  whitelistLoaded(version: string, tenants: number): void {
    this.whitelistInfo.reset();
    this.whitelistInfo.labels(version).set(1);
    this.tenants.set(tenants);
  }
}
