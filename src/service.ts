import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { DecisionPolicy } from './decision.ts';
import { DEFAULT_MAX_DEPTH } from './json/strict-json.ts';
import { buildSnapshot, type Snapshot } from './model/snapshot.ts';
import { createLogger, type Logger } from './observe/logger.ts';
import { Metrics } from './observe/metrics.ts';
import { opsApp } from './http/ops.ts';
import { UpstreamProxy } from './http/proxy.ts';
import { publicHandler } from './http/public.ts';
import { refusalBody } from './http/refusal.ts';
import { requestIdFor } from './http/request-id.ts';
import type { Settings } from './settings.ts';
import type { FileSourceOptions } from './store/file.ts';
import { createSource } from './store/create.ts';
import { whitelistChanges } from './store/changes.ts';
import { SnapshotHolder } from './store/holder.ts';
import { VerifiedTokenCache } from './token/cache.ts';
import { JwksCache } from './token/jwks.ts';

const DRAIN_MS = 10_000;
const TOKEN_CACHE_ENTRIES = 10_000;

export interface Service {
  readonly publicUrl: string;
  readonly adminUrl: string;
  readonly holder: SnapshotHolder;
  readonly metrics: Metrics;
  /** Verified tokens, emptied on every whitelist change. */
  readonly tokenCache: VerifiedTokenCache;
  /** The tenants' JWKS sets; `status()` tells each one's age and last error. */
  readonly jwks: JwksCache;
  /** Stops accepting, lets in-flight requests finish (at most drainMs), then closes everything. */
  close(drainMs?: number): Promise<void>;
}

export interface ServiceOptions {
  readonly logger?: Logger;
  readonly fileOptions?: FileSourceOptions;
  readonly now?: () => number;
  /** One more CA (PEM) to trust for JWKS endpoints, e.g. a test CA. */
  readonly jwksCa?: string;
  /** Smallest interval between unknown-kid refetches of one tenant's JWKS (default 30 s). */
  readonly jwksRefetchIntervalMs?: number;
}

export function decisionPolicy(settings: Settings): DecisionPolicy {
  return {
    trustedProxies: settings.trustedProxies,
    oinField: settings.oinField,
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

function listen(handler: RequestListener, host: string, port: number): Promise<Server> {
  const server = createServer(handler);
  // Malformed HTTP (e.g. Content-Length with Transfer-Encoding) never reaches
  // Koa; answer it in the contract's JSON shape and close.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const requestId = requestIdFor(undefined);
    const body = status === 400 ? refusalBody(400, requestId) : JSON.stringify({ error: 'headers_too_large', message: 'Request headers are too large.', requestId });
    socket.end(
      `HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : 'Request Header Fields Too Large'}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function urlOf(server: Server): string {
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

function closeServer(server: Server, drainMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), drainMs);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Starts oingate: loads the whitelist, then opens the ops and public listeners. */
export async function startService(settings: Settings, options: ServiceOptions = {}): Promise<Service> {
  const logger = options.logger ?? createLogger(settings.logLevel);
  const metrics = new Metrics();
  const tokenCache = new VerifiedTokenCache(TOKEN_CACHE_ENTRIES);
  const source = await createSource(settings, logger, options.fileOptions);
  const build = (document: unknown): Promise<Snapshot> => buildSnapshot(document, { oinPattern: settings.oinPattern });
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
  const holder = new SnapshotHolder(source, build, {
    accepted() {
      metrics.loadSucceeded();
    },
    loaded(snapshot, previous) {
      // Entries are bound to the old KeySets and could never match again; free them.
      tokenCache.clear();
      jwks.sync(snapshot.tenants.values());
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
  });

  const policy = decisionPolicy(settings);
  const proxy = settings.upstream
    ? new UpstreamProxy({
        upstream: settings.upstream,
        timeoutMs: settings.upstreamTimeoutMs,
        trustedProxies: settings.trustedProxies,
      })
    : undefined;

  // A store that is down at start-up must not keep the listeners closed:
  // /healthz answers and requests get 503 until the first load succeeds.
  await holder.start();

  // A listener that cannot open (port in use) must not leave the watcher,
  // the LISTEN connection or the other listener holding the process open.
  let ops: Server | undefined;
  let server: Server;
  try {
    ops = await listen(
      opsApp({ holder, metrics, logger, adminToken: settings.adminToken }).callback(),
      settings.adminListen.host,
      settings.adminListen.port,
    );
    const handler = publicHandler({
      snapshot: () => holder.current,
      policy,
      oinHeader: settings.oinHeader,
      bodyLimit: settings.bodyLimitBytes,
      logger,
      metrics,
      tokenCache,
      keys: (tenant) => jwks.keysFor(tenant),
      refreshKeys: (tenant) => jwks.refreshOnUnknownKid(tenant),
      ...(proxy ? { proxy } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    server = await listen(handler, settings.listen.host, settings.listen.port);
  } catch (error) {
    if (ops) await closeServer(ops, 0);
    await proxy?.close();
    await holder.close();
    await jwks.close();
    throw error;
  }
  const opsServer = ops;
  logger.info(
    { public: urlOf(server), admin: urlOf(opsServer), mode: proxy ? 'proxy' : 'forward-auth', store: source.description },
    'oingate listening',
  );

  let closing: Promise<void> | undefined;
  return {
    publicUrl: urlOf(server),
    adminUrl: urlOf(opsServer),
    holder,
    metrics,
    tokenCache,
    jwks,
    close(drainMs = DRAIN_MS) {
      closing ??= (async () => {
        await closeServer(server, drainMs);
        await closeServer(opsServer, 1_000);
        await proxy?.close();
        await holder.close();
        await jwks.close();
      })();
      return closing;
    },
  };
}
