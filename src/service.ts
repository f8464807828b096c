import type { Server } from 'node:http';
import { startCore, type GateCore } from './core.ts';
import { BUILD_RUNNING } from './observe/build-info.ts';
import { createLogger, type Logger } from './observe/logger.ts';
import type { Metrics } from './observe/metrics.ts';
import { publicApp } from './http/app.ts';
import { Drain } from './http/drain.ts';
import { preflightLogFields } from './http/gate.ts';
import { jsonBodyParser, OPS_BODY_LIMIT, opsApp } from './http/ops.ts';
import { openUpstreamProxy, type UpstreamProxy } from './http/proxy.ts';
import { checkingInterval, closeServer, listen, urlOf } from './http/server.ts';
import { createTlsServer, type TlsServer } from './http/tls-server.ts';
import type { TlsCounters } from './observe/metrics.ts';
import { SettingsError, type Settings } from './settings.ts';
import type { FileSourceOptions } from './store/file.ts';
import type { WhitelistSource } from './store/source.ts';
import type { SnapshotHolder } from './store/holder.ts';
import type { VerifiedTokenCache } from './token/cache.ts';
import type { JwksCache } from './token/jwks.ts';

export { decisionPolicy } from './core.ts';

export interface Service {
  readonly publicUrl: string;
  readonly adminUrl: string;
  readonly holder: SnapshotHolder;
  readonly metrics: Metrics;
  /** Verified tokens, emptied on every whitelist change. */
  readonly tokenCache: VerifiedTokenCache;
  /** The tenants' JWKS sets; `status()` tells each one's age and last error. */
  readonly jwks: JwksCache;
  /**
   * Turns /readyz 503, stops accepting, lets in-flight requests finish (at
   * most drainMs, default OINGATE_DRAIN_SECONDS; those cut then are logged
   * as `shutdown`), then closes everything.
   */
  close(drainMs?: number): Promise<void>;
}

export interface ServiceOptions {
  readonly logger?: Logger;
  readonly fileOptions?: FileSourceOptions;
  /** The store, already made (by createSource, for these settings); else made here. */
  readonly source?: WhitelistSource;
  readonly now?: () => number;
  /** One more CA (PEM) to trust for JWKS endpoints, e.g. a test CA. */
  readonly jwksCa?: string;
  /** Smallest interval between unknown-kid refetches of one tenant's JWKS (default 30 s). */
  readonly jwksRefetchIntervalMs?: number;
}

/** Starts oingate: loads the whitelist, then opens the ops and public listeners. */
export async function startService(settings: Settings, options: ServiceOptions = {}): Promise<Service> {
  if (settings.tlsClientCaFile !== undefined && settings.tls === undefined && settings.clientCertHeader === undefined) {
    // No certificate could ever reach the gate: a plain listener asks for none.
    throw new SettingsError('OINGATE_TLS_CLIENT_CA', 'needs OINGATE_TLS_CERT and OINGATE_TLS_KEY (our own HTTPS listener) or OINGATE_CLIENT_CERT_HEADER (a front proxy)');
  }
  const logger = options.logger ?? createLogger(settings.logLevel);
  // TLS files that do not load stop start-up, naming the file; made before the core so it can verify with them.
  let counters: TlsCounters | undefined;
  const tls = settings.tls ? await openTls(settings, logger, () => counters) : undefined;
  // A store that is down at start-up must not keep the listeners closed:
  // /healthz answers and requests get 503 until the first load succeeds.
  let core: GateCore;
  // Loaded while the first whitelist loads (mostly a wait for the reading
  // thread or the database), never on the loop that serves requests.
  const opsBody = jsonBodyParser();
  opsBody.catch(() => undefined); // awaited below, once the core stands
  try {
    core = await startCore(settings, {
      logger,
      ...(options.fileOptions ? { fileOptions: options.fileOptions } : {}),
      ...(options.source ? { source: options.source } : {}),
      ...(options.now ? { now: options.now } : {}),
      ...(options.jwksCa !== undefined ? { jwksCa: options.jwksCa } : {}),
      ...(options.jwksRefetchIntervalMs !== undefined ? { jwksRefetchIntervalMs: options.jwksRefetchIntervalMs } : {}),
      ...(tls ? { tlsListener: tls } : {}),
    });
  } catch (error) {
    tls?.close();
    throw error;
  }
  counters = core.tlsCounters;
  const { holder, metrics } = core;
  let proxy: UpstreamProxy | undefined;
  try {
    proxy = settings.upstream
      ? await openUpstreamProxy({
          upstream: settings.upstream,
          timeoutMs: settings.upstreamTimeoutMs,
          trustedProxies: settings.trustedProxies,
          metrics,
        })
      : undefined;
  } catch (error) {
    // undici that cannot load must not leave the store or the TLS files watched.
    tls?.close();
    await core.close();
    throw error;
  }
  const drain = new Drain();

  // A listener that cannot open (port in use) must not leave the watcher,
  // the LISTEN connection or the other listener holding the process open.
  let ops: Server | undefined;
  let server: Server;
  try {
    await opsBody;
    ops = await listen(
      opsApp({ holder, metrics, logger, adminToken: settings.adminToken, adminHosts: settings.adminHosts, stopping: () => drain.stopping }).callback(),
      settings.adminListen.host,
      settings.adminListen.port,
      { clientTimeoutMs: settings.clientTimeoutMs, bodyLimit: OPS_BODY_LIMIT, logger },
    );
    const app = publicApp({ ...core.gateOptions, ...(proxy ? { proxy } : {}) });
    server = await listen(drain.track(app.callback()), settings.listen.host, settings.listen.port, {
      clientTimeoutMs: settings.clientTimeoutMs,
      bodyLimit: settings.bodyLimitBytes,
      maxConnections: settings.maxConnections,
      logger,
      ...(tls ? { server: tls.server } : {}),
      logFields: preflightLogFields(settings.trustedProxies, settings.oinHeader),
    });
  } catch (error) {
    tls?.close();
    if (ops) await closeServer(ops, 0);
    await proxy?.close();
    await core.close();
    throw error;
  }
  const opsServer = ops;
  logger.info(
    { public: urlOf(server), admin: urlOf(opsServer), mode: proxy ? 'proxy' : 'forward-auth', store: holder.source.description, build: BUILD_RUNNING },
    'oingate listening',
  );

  let closing: Promise<void> | undefined;
  return {
    publicUrl: urlOf(server),
    adminUrl: urlOf(opsServer),
    holder,
    metrics,
    tokenCache: core.tokenCache,
    jwks: core.jwks,
    close(drainMs = settings.drainSeconds * 1000) {
      closing ??= (async () => {
        await drain.close([server], drainMs);
        tls?.close();
        await closeServer(opsServer, 1_000);
        await proxy?.close();
        await core.close();
      })();
      return closing;
    },
  };
}

/**
 * The HTTPS listener (contract §9), not yet listening: TLS 1.2+, the files
 * watched, a handshake bounded by the client timeout, and the same HTTP
 * timeouts as the plain listener. Failed handshakes are counted, and logged
 * at most once a second so that a scan does not flood the log.
 */
function openTls(settings: Settings, logger: Logger, counters: () => TlsCounters | undefined): Promise<TlsServer> {
  const files = settings.tls as NonNullable<Settings['tls']>;
  let lastLogged = 0;
  return createTlsServer(undefined, {
    certFile: files.certFile,
    keyFile: files.keyFile,
    ...(settings.tlsClientCaFile !== undefined ? { clientCaFile: settings.tlsClientCaFile } : {}),
    ...(settings.tlsCrlFile !== undefined ? { crlFile: settings.tlsCrlFile } : {}),
    oinPattern: settings.oinPattern,
    handshakeTimeoutMs: settings.clientTimeoutMs,
    logger,
    httpOptions: {
      requireHostHeader: false,
      headersTimeout: settings.clientTimeoutMs,
      requestTimeout: settings.clientTimeoutMs * 2,
      connectionsCheckingInterval: checkingInterval(settings.clientTimeoutMs),
    },
    onError: () => counters()?.reloadRefused(),
    onHandshakeError(error) {
      counters()?.handshakeFailed();
      const now = Date.now();
      if (now - lastLogged < 1_000) return;
      lastLogged = now;
      logger.warn({ err: (error as NodeJS.ErrnoException).code ?? error.message }, 'tls handshake failed');
    },
  });
}
