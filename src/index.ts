/**
 * oingate as a library: the gate as Koa middleware, for an API that wants
 * the decision in its own process (contract §8). Reads no environment
 * variable: everything comes from the options.
 */
import type { Middleware } from 'koa';
import type { Registry } from 'prom-client';
import { startCore } from './core.ts';
import { gateMiddleware } from './http/middleware.ts';
import { createLogger, type Logger } from './observe/logger.ts';
import { SettingsError, settingsFromOptions, type SettingsOptions } from './settings.ts';
import type { Readiness } from './store/holder.ts';

export type { OingateState } from './http/middleware.ts';
export type { Readiness } from './store/holder.ts';
export { SettingsError } from './settings.ts';

/**
 * The §4 settings by their names without OINGATE_, in camelCase, with the
 * same defaults and validation; plus `logger`.
 */
export interface CreateGateOptions {
  /** `file:PATH` or a `postgres://` URL; default `file:config/whitelist.json`. */
  readonly store?: string;
  /** CIDRs whose X-Forwarded-For is believed, comma-separated or as an array. */
  readonly trustedProxies?: string | readonly string[];
  readonly oinField?: string;
  readonly oinHeader?: string;
  readonly oinPattern?: string;
  readonly tenantClaim?: string;
  /** Claim names handed on as x-authenticated-claim-<name>; all claims are on ctx.state.oingate.claims anyway. */
  readonly forwardClaims?: string | readonly string[];
  readonly issuer?: string;
  readonly audience?: string;
  readonly clockTolerance?: number | string;
  readonly maxTokenLifetime?: number | string;
  readonly bodyLimit?: number | string;
  readonly jwksTtl?: number | string;
  readonly jwksMaxStale?: number | string;
  readonly pgResyncSeconds?: number | string;
  /** `redis://` or `rediss://` URL: tenants' rate limits shared with every instance naming it (contract §11). */
  readonly rateLimitRedis?: string;
  /** Longest wait for that Redis per decision before it is counted locally; default 50. */
  readonly rateLimitTimeoutMs?: number | string;
  /** Header carrying a front proxy's client certificate, believed only from trustedProxies (needs tlsClientCa). */
  readonly clientCertHeader?: string;
  /** PEM file of the CAs client certificates must chain to, for the header and for the application's own HTTPS connections. */
  readonly tlsClientCa?: string;
  /** PEM file of CRLs for client certificates (needs tlsClientCa). */
  readonly tlsCrl?: string;
  /** Decision and key metrics carry `oin` and `kid` labels; default false (one series per tenant and key). */
  readonly metricsTenantLabels?: boolean;
  /** Level of the logger oingate creates when none is given; default `info`. */
  readonly logLevel?: string;
  /** A pino logger for the decision lines and the store's messages. */
  readonly logger?: Logger;
  /** Any other §4 setting; an unknown name rejects, naming it. */
  readonly [option: string]: unknown;
}

export interface ReloadResult {
  /** False when the store's whitelist was refused (the old one stays), as `POST /reload` answers 422. */
  readonly ok: boolean;
  readonly readiness: Readiness;
}

export interface Gate {
  /** The gate: mount it before any body parser. */
  readonly middleware: Middleware;
  /** The `/readyz` body. */
  readiness(): Readiness;
  /** Reloads from the store now, as `POST /reload` does. */
  reload(): Promise<ReloadResult>;
  /** The prom-client registry of the gate's metrics. */
  readonly registry: Registry;
  /** Stops the store's watcher or connection and the JWKS fetches; leaves no open handle. */
  close(): Promise<void>;
}

// Settings of `oingate serve` that mean nothing inside another application:
// refused, so that nobody believes they took effect.
// tlsCert/tlsKey: the application's own HTTPS server holds its certificate; the gate reads the peer's from the socket.
const SERVICE_ONLY = ['listen', 'adminListen', 'upstream', 'upstreamTimeoutMs', 'adminToken', 'adminHosts', 'maxConnections', 'drainSeconds', 'tlsCert', 'tlsKey'];

/**
 * Creates the gate. Resolves once the first load of the whitelist has been
 * tried: a store that is down does not reject (the gate answers 503 until a
 * whitelist is loaded); a bad option rejects with a SettingsError naming it.
 */
export async function createGate(options: CreateGateOptions = {}): Promise<Gate> {
  if (typeof options !== 'object' || options === null) throw new TypeError('createGate: options must be an object');
  for (const name of SERVICE_ONLY) {
    if (options[name] !== undefined) throw new SettingsError(name, 'is a setting of `oingate serve`, not of the embedded gate');
  }
  const logger = options.logger;
  if (logger !== undefined && (typeof logger !== 'object' || typeof (logger as Logger).child !== 'function')) {
    throw new SettingsError('logger', 'must be a pino logger');
  }
  const settings = settingsFromOptions(options as SettingsOptions, ['logger']);
  const core = await startCore(settings, { logger: logger ?? createLogger(settings.logLevel) });
  const { holder } = core;
  return {
    middleware: gateMiddleware(core.gateOptions),
    readiness: () => holder.readiness(),
    async reload() {
      const outcome = await holder.reload();
      return { ok: outcome.ok, readiness: holder.readiness() };
    },
    registry: core.metrics.registry,
    close: () => core.close(),
  };
}
