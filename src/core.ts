import { foldedPath, type DecisionPolicy, type KeyLookup } from './decision.ts';
import type { GateOptions } from './http/gate.ts';
import { keysThatMayDiffer } from './model/layered-map.ts';
import { applyChanges, buildSnapshot, type ChangeSet, type Snapshot, type Tenant } from './model/snapshot.ts';
import type { Logger } from './observe/logger.ts';
import { Metrics } from './observe/metrics.ts';
import { DEFAULT_MAX_DEPTH } from './json/strict-json.ts';
import type { Settings } from './settings.ts';
import { whitelistChanges } from './store/changes.ts';
import { createSource } from './store/create.ts';
import type { FileSourceOptions } from './store/file.ts';
import { SnapshotHolder } from './store/holder.ts';
import { VerifiedTokenCache } from './token/cache.ts';
import { JwksCache } from './token/jwks.ts';

const TOKEN_CACHE_ENTRIES = 10_000;

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
    },
  };
}

/** The tenants of `next` that are not the very objects of `previous`, and the OINs gone. */
export function changedTenants(previous: Snapshot, next: Snapshot): { changed: Tenant[]; removed: string[] } {
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
  for (const [oin, tenant] of next.tenants) if (previous.tenants.get(oin) !== tenant) changed.push(tenant);
  for (const oin of previous.tenants.keys()) if (!next.tenants.has(oin)) removed.push(oin);
  return { changed, removed };
}

export interface CoreOptions {
  readonly logger: Logger;
  readonly fileOptions?: FileSourceOptions;
  readonly now?: () => number;
  /** One more CA (PEM) to trust for JWKS endpoints, e.g. a test CA. */
  readonly jwksCa?: string;
  /** Smallest interval between unknown-kid refetches of one tenant's JWKS (default 30 s). */
  readonly jwksRefetchIntervalMs?: number;
}

/** What the service and an embedding API share: the store, the keys, the metrics and the gate's options. */
export interface GateCore {
  readonly holder: SnapshotHolder;
  readonly metrics: Metrics;
  readonly tokenCache: VerifiedTokenCache;
  readonly jwks: JwksCache;
  readonly gateOptions: GateOptions;
  /** Stops the store's watcher or connection and the JWKS fetches. */
  close(): Promise<void>;
}

/**
 * Opens the store and tries the first load. A store that is down does not
 * reject: requests get 503 until a whitelist is loaded.
 */
export async function startCore(settings: Settings, options: CoreOptions): Promise<GateCore> {
  const { logger } = options;
  const metrics = new Metrics();
  const tokenCache = new VerifiedTokenCache(TOKEN_CACHE_ENTRIES);
  const source = await createSource(settings, logger, options.fileOptions);
  const build = (document: unknown, previous: Snapshot | undefined): Promise<Snapshot> =>
    buildSnapshot(document, { oinPattern: settings.oinPattern, ...(previous ? { previous } : {}) });
  const apply = (current: Snapshot, changes: ChangeSet): Promise<Snapshot> =>
    applyChanges(current, changes, { oinPattern: settings.oinPattern });
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
  if (source.connected !== undefined) metrics.trackStoreConnection(() => source.connected === true);
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
        if (previous === undefined) jwks.sync(snapshot.tenants.values());
        else {
          const { changed, removed } = changedTenants(previous, snapshot);
          jwks.update(changed, removed);
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

  try {
    await holder.start();
  } catch (error) {
    // A watcher that cannot start must not leave the source open.
    await holder.close();
    await jwks.close();
    throw error;
  }

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
    ...(options.now ? { now: options.now } : {}),
  };

  let closing: Promise<void> | undefined;
  return {
    holder,
    metrics,
    tokenCache,
    jwks,
    gateOptions,
    close() {
      closing ??= (async () => {
        await holder.close();
        await jwks.close();
      })();
      return closing;
    },
  };
}
