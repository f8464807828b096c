import { foldedPath, type DecisionPolicy, type KeyLookup } from './decision.ts';
import type { GateOptions } from './http/gate.ts';
import { createRateLimiter, type RateLimiter } from './limit/limiter.ts';
import { registerRateLimitMetrics } from './limit/metrics.ts';
import { keysThatMayDiffer } from './model/layered-map.ts';
import { runSliced, type Work } from './model/pacing.ts';
import { applyChanges, buildSnapshot, type ChangeSet, type Snapshot, type Tenant } from './model/snapshot.ts';
import type { Logger } from './observe/logger.ts';
import { Metrics } from './observe/metrics.ts';
import { DEFAULT_MAX_DEPTH } from './json/strict-json.ts';
import { validationRules, type Settings } from './settings.ts';
import { whitelistChanges } from './store/changes.ts';
import { createSource } from './store/create.ts';
import type { FileSourceOptions } from './store/file.ts';
import { SnapshotHolder } from './store/holder.ts';
import type { WhitelistSource } from './store/source.ts';
import type { TlsReadiness } from './store/holder.ts';
import { VerifiedTokenCache } from './token/cache.ts';
import { JwksCache } from './token/jwks.ts';
import type { TLSSocket } from 'node:tls';
import { certificateSource } from './http/client-cert.ts';
import type { TlsCounters } from './observe/metrics.ts';
import { watchClientCas } from './tls/client-cas.ts';
import type { CertificateFacts } from './tls/facts.ts';
import type { CertificateVerifier } from './tls/verify.ts';

const TOKEN_CACHE_ENTRIES = 10_000;
/** How long start-up waits for a shared rate-limit Redis; until it answers, limits are counted locally. */
const RATE_LIMIT_READY_MS = 1_000;

export function decisionPolicy(settings: Settings): DecisionPolicy {
  return {
    trustedProxies: settings.trustedProxies,
    oinField: settings.oinField,
    oinFieldFolded: foldedPath(settings.oinField),
    oinPattern: settings.oinPattern,
    tenantClaim: settings.tenantClaim,
    maxBodyDepth: DEFAULT_MAX_DEPTH,
    token: {
      clockToleranceSeconds: settings.clockToleranceSeconds,
      maxLifetimeSeconds: settings.maxTokenLifetimeSeconds,
      ...(settings.issuer !== undefined ? { issuer: settings.issuer } : {}),
      ...(settings.audience !== undefined ? { audience: settings.audience } : {}),
      ...(settings.requireJti ? { requireJti: true } : {}),
    },
  };
}

/**
 * The tenants of `next` that are not the very objects of `previous`, and the
 * OINs gone. In steps: after a full build it compares 100,000 tenants.
 */
export function changedTenants(previous: Snapshot, next: Snapshot): Promise<{ changed: Tenant[]; removed: string[] }> {
  return runSliced(diffTenants(previous, next), 10);
}

function* diffTenants(previous: Snapshot, next: Snapshot): Work<{ changed: Tenant[]; removed: string[] }> {
  const changed: Tenant[] = [];
  const removed: string[] = [];
  // After an incremental change only the deltas can differ: no walk over 100k tenants.
  const candidates = keysThatMayDiffer(previous.tenants, next.tenants);
  if (candidates !== undefined) {
    for (const oin of candidates) {
      const tenant = next.tenants.get(oin);
      if (tenant === undefined) {
        if (previous.tenants.has(oin)) removed.push(oin);
      } else if (previous.tenants.get(oin) !== tenant) changed.push(tenant);
    }
    return { changed, removed };
  }
  let seen = 0;
  for (const [oin, tenant] of next.tenants) {
    if (previous.tenants.get(oin) !== tenant) changed.push(tenant);
    if ((++seen & 1023) === 0) yield;
  }
  for (const oin of previous.tenants.keys()) {
    if (!next.tenants.has(oin)) removed.push(oin);
    if ((++seen & 1023) === 0) yield;
  }
  return { changed, removed };
}

export interface CoreOptions {
  readonly logger: Logger;
  readonly fileOptions?: FileSourceOptions;
  /** The store, already made (by createSource, for these settings); else made here. */
  readonly source?: WhitelistSource;
  readonly now?: () => number;
  /** One more CA (PEM) to trust for JWKS endpoints, e.g. a test CA. */
  readonly jwksCa?: string;
  /** Smallest interval between unknown-kid refetches of one tenant's JWKS (default 30 s). */
  readonly jwksRefetchIntervalMs?: number;
  /**
   * The service's own TLS listener (TlsServer), which watches the CA bundle
   * and CRLs itself. Unset with OINGATE_TLS_CLIENT_CA: the core watches them.
   */
  readonly tlsListener?: TlsListener;
}

/** What the core needs of a TLS listener it does not own. */
export interface TlsListener {
  readonly verifier: CertificateVerifier | undefined;
  facts(socket: TLSSocket): CertificateFacts;
  status(): TlsReadiness;
}

/** What the service and an embedding API share: the store, the keys, the metrics and the gate's options. */
export interface GateCore {
  readonly holder: SnapshotHolder;
  readonly metrics: Metrics;
  readonly tokenCache: VerifiedTokenCache;
  readonly jwks: JwksCache;
  readonly gateOptions: GateOptions;
  /** Tenants' rate limits: local, or shared through OINGATE_RATE_LIMIT_REDIS. */
  readonly rateLimiter: RateLimiter;
  /** Set when TLS or client certificates are on: the TLS counters, for the listener's events. */
  readonly tlsCounters: TlsCounters | undefined;
  /** Stops the store's watcher or connection and the JWKS fetches. */
  close(): Promise<void>;
}

/**
 * Opens the store and tries the first load. A store that is down does not
 * reject: requests get 503 until a whitelist is loaded.
 */
export async function startCore(settings: Settings, options: CoreOptions): Promise<GateCore> {
  const { logger } = options;
  const metrics = new Metrics({ tenantLabels: settings.metricsTenantLabels });
  const tokenCache = new VerifiedTokenCache(TOKEN_CACHE_ENTRIES);
  const source = options.source ?? (await createSource(settings, logger, options.fileOptions));
  const rules = validationRules(settings);
  // A revocation is forgotten only once its token is past expiry by more than the tolerance tokens get.
  const clockToleranceMs = settings.clockToleranceSeconds * 1000;
  const build = (document: unknown, previous: Snapshot | undefined): Promise<Snapshot> =>
    buildSnapshot(document, { ...rules, clockToleranceMs, ...(previous ? { previous } : {}) });
  const apply = (current: Snapshot, changes: ChangeSet): Promise<Snapshot> =>
    applyChanges(current, changes, { ...rules, clockToleranceMs });
  // Without our own TLS listener, the core watches the CA bundle and CRLs; a bad one stops start-up, naming the file.
  let tlsCounters: TlsCounters | undefined;
  const ownCas =
    settings.tlsClientCaFile === undefined || options.tlsListener !== undefined
      ? undefined
      : await watchClientCas(
          {
            clientCaFile: settings.tlsClientCaFile,
            ...(settings.tlsCrlFile !== undefined ? { crlFile: settings.tlsCrlFile } : {}),
            oinPattern: settings.oinPattern,
          },
          {
            onError(error) {
              tlsCounters?.reloadRefused();
              logger.warn({ err: error.message }, 'client CA bundle or CRL refused, the last good one stays');
            },
          },
        ).catch(async (error: unknown) => {
          // A CA file that cannot load must not leave the store's watcher open.
          await source.close();
          throw error;
        });
  const tlsListener = options.tlsListener;
  const tlsStatus: (() => TlsReadiness) | undefined = tlsListener
    ? () => tlsListener.status()
    : ownCas
      ? () => {
          const verifier = ownCas.current;
          return {
            certificateNotAfter: null,
            clientCas: verifier.clientCas,
            crlNextUpdate: verifier.crlNextUpdateMs !== undefined ? new Date(verifier.crlNextUpdateMs).toISOString() : null,
            lastError: ownCas.lastError,
          };
        }
      : undefined;
  if (tlsStatus !== undefined) tlsCounters = metrics.trackTls(tlsStatus);
  // Created before the holder: its first `loaded` event already syncs it.
  // A failing JWKS endpoint is one tenant's problem: it shows in the log
  // and the metrics, never in the holder's readiness.
  const jwks = new JwksCache({
    ttlSeconds: settings.jwksTtlSeconds,
    maxStaleSeconds: settings.jwksMaxStaleSeconds,
    logger: logger.child({ component: 'jwks' }),
    onFetch: (oin, outcome) => metrics.jwksFetched(oin, outcome),
    ...(options.jwksCa !== undefined ? { ca: options.jwksCa } : {}),
    ...(options.jwksRefetchIntervalMs !== undefined ? { refetchIntervalMs: options.jwksRefetchIntervalMs } : {}),
  });
  metrics.trackJwks(() => jwks.status());
  const rateLimiter = await createRateLimiter({
    ...(settings.rateLimitRedis !== undefined ? { redisUrl: settings.rateLimitRedis } : {}),
    commandTimeoutMs: settings.rateLimitTimeoutMs,
    logger: logger.child({ component: 'rate-limit' }),
  }).catch(async (error: unknown) => {
    // The Redis limiter that cannot load must not leave the store or the CA watcher open.
    ownCas?.close();
    await jwks.close();
    await source.close();
    throw error;
  });
  registerRateLimitMetrics(metrics.registry, rateLimiter);
  // Connects while the whitelist loads; waited for below, at most RATE_LIMIT_READY_MS.
  const rateLimitReady = rateLimiter.ready(RATE_LIMIT_READY_MS);
  if (source.connected !== undefined) metrics.trackStoreConnection(() => source.connected === true);
  // The JWKS sets follow the loads in their order, each diffed in steps.
  let jwksUpdates: Promise<void> = Promise.resolve();
  const holder = new SnapshotHolder(
    source,
    build,
    {
      accepted() {
        metrics.loadSucceeded();
      },
      loaded(snapshot, previous) {
        // The token cache is left alone: its entries count only for the very
        // KeySet they were verified with, so a tenant shared with the previous
        // snapshot keeps its entries and a changed one misses; the bound evicts
        // the dead. JWKS sets follow only the tenants that changed.
        // Until its update lands, a tenant whose jwksUri changed gets no JWKS keys (keysFor checks the URI).
        if (previous === undefined) jwks.sync(snapshot.tenants.values());
        else {
          jwksUpdates = jwksUpdates
            .then(() => changedTenants(previous, snapshot))
            .then(({ changed, removed }) => jwks.update(changed, removed))
            .catch((error: unknown) => logger.error({ err: error }, 'cannot follow the whitelist change in the JWKS sets'));
        }
        metrics.whitelistLoaded(snapshot.version, snapshot.tenants.size, snapshot);
        // One line per change, saying per tenant what changed (never a secret);
        // the diff is sliced, so the line follows the swap by a moment.
        whitelistChanges(previous, snapshot).then(
          (changes) => logger.info({ version: snapshot.version, previous: previous?.version ?? null, tenants: snapshot.tenants.size, store: source.description, changes }, 'whitelist loaded'),
          (error: unknown) => logger.error({ err: error }, 'cannot describe the whitelist change; it is loaded'),
        );
      },
      observerFailed(error) {
        logger.error({ err: error }, 'a whitelist observer failed; the reload itself stands');
      },
      refused(error, cause) {
        metrics.reloadRefused(cause);
        const kept = holder.current ? 'the last good whitelist stays in force' : 'no whitelist is loaded yet, so requests get 503';
        logger.error({ error, store: source.description }, `whitelist not loaded; ${kept}`);
      },
    },
    apply,
  );

  holder.addReadiness(() => {
    const status = rateLimiter.status();
    return status === undefined ? undefined : { rateLimit: status };
  });

  // Imported while the first whitelist loads (mostly a wait), not at a first fetch on the serving loop.
  const jwksReady = jwks.prepare();
  jwksReady.catch(() => undefined); // awaited below
  try {
    await holder.start();
    await jwksReady;
  } catch (error) {
    // A watcher that cannot start must not leave the source open.
    await holder.close();
    await jwks.close();
    await rateLimiter.close();
    ownCas?.close();
    throw error;
  }
  await rateLimitReady;
  if (tlsStatus !== undefined) holder.addReadiness(() => ({ tls: tlsStatus() }));

  const keys: KeyLookup = (tenant) => jwks.keysFor(tenant);
  const gateOptions: GateOptions = {
    snapshot: () => holder.current,
    policy: decisionPolicy(settings),
    oinHeader: settings.oinHeader,
    bodyLimit: settings.bodyLimitBytes,
    bodyDeadlineMs: settings.clientTimeoutMs,
    logger,
    metrics,
    tokenCache,
    keys,
    refreshKeys: (tenant) => jwks.refreshOnUnknownKid(tenant),
    forwardClaims: settings.forwardClaims,
    rateLimiter,
    ...(options.now ? { now: options.now } : {}),
    ...(tlsListener || ownCas
      ? {
          certificate: certificateSource({
            verifier: () => (tlsListener ? tlsListener.verifier : ownCas?.current),
            trustedProxies: settings.trustedProxies,
            ...(settings.clientCertHeader !== undefined ? { header: settings.clientCertHeader } : {}),
            ...(tlsListener ? { socketFacts: (socket: TLSSocket) => tlsListener.facts(socket) } : {}),
            ...(options.now ? { now: options.now } : {}),
          }),
        }
      : {}),
  };

  let closing: Promise<void> | undefined;
  return {
    holder,
    metrics,
    tokenCache,
    jwks,
    gateOptions,
    rateLimiter,
    tlsCounters,
    close() {
      closing ??= (async () => {
        ownCas?.close();
        await holder.close();
        await jwks.close();
        await rateLimiter.close();
      })();
      return closing;
    },
  };
}
