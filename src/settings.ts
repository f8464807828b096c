import { CidrError, CidrSet, parseCidr } from './ip/cidr.ts';
import { splitDottedPath } from './json/strict-json.ts';
import { DEFAULT_COMMAND_TIMEOUT_MS, describeUrl, RedisUrlError } from './limit/redis-url.ts';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export type StoreSetting =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'postgres'; readonly url: string };

/** Everything oingate reads from its environment, validated once at start-up. */
export interface Settings {
  readonly listen: ListenAddress;
  readonly adminListen: ListenAddress;
  readonly store: StoreSetting;
  readonly upstream: URL | undefined;
  readonly trustedProxies: CidrSet;
  readonly trustedProxyTexts: readonly string[];
  readonly adminToken: string | undefined;
  readonly oinField: readonly string[];
  readonly oinHeader: string;
  readonly oinPattern: RegExp;
  readonly tenantClaim: string;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly clockToleranceSeconds: number;
  readonly maxTokenLifetimeSeconds: number;
  readonly bodyLimitBytes: number;
  readonly upstreamTimeoutMs: number;
  readonly logLevel: string;
  readonly jwksTtlSeconds: number;
  readonly jwksMaxStaleSeconds: number;
  readonly pgResyncSeconds: number;
  /** Headers and body must arrive within this (408 otherwise). */
  readonly clientTimeoutMs: number;
  /** Open client connections on the public listener; more are closed at once. */
  readonly maxConnections: number;
  /** On SIGTERM, how long in-flight requests may finish. */
  readonly drainSeconds: number;
  /** Extra Host names the ops listener answers to (lower case). */
  readonly adminHosts: readonly string[];
  /** Claim names passed on as x-authenticated-claim-<name> (lower case header suffix). */
  readonly forwardClaims: readonly string[];
  /** Redis URL through which tenants' rate limits are shared; unset: each instance counts alone. */
  readonly rateLimitRedis: string | undefined;
  /** Longest wait for Redis per rate-limit decision before it is counted locally. */
  readonly rateLimitTimeoutMs: number;
  /** Server certificate and key files (OINGATE_TLS_CERT / OINGATE_TLS_KEY), both or neither: the public listener speaks HTTPS. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** CA bundle client certificates must chain to (OINGATE_TLS_CLIENT_CA). */
  readonly tlsClientCaFile: string | undefined;
  /** CRLs enforced on client certificates (OINGATE_TLS_CRL); needs the CA bundle. */
  readonly tlsCrlFile: string | undefined;
  /** Header carrying a front proxy's client certificate (lower case), believed only from trusted proxies. */
  readonly clientCertHeader: string | undefined;
  /** Decision and key metrics carry `oin` and `kid` labels (one series per tenant and key). */
  readonly metricsTenantLabels: boolean;
  /** Tokens without a string `jti` are refused, so that every accepted token can be revoked one by one. */
  readonly requireJti: boolean;
}

/** A bad setting: the message names the variable and never echoes a secret. */
export class SettingsError extends Error {
  readonly code = 'ERR_INVALID_SETTING';
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'SettingsError';
    this.variable = variable;
  }
}

/**
 * Every variable oingate reads. Anything else under OINGATE_ stops start-up:
 * a typo of a security setting must never be silently ignored, and neither
 * must a setting of a feature this version does not have.
 */
const KNOWN_VARIABLES: readonly string[] = [
  'OINGATE_LISTEN',
  'OINGATE_ADMIN_LISTEN',
  'OINGATE_STORE',
  'OINGATE_UPSTREAM',
  'OINGATE_TRUSTED_PROXIES',
  'OINGATE_ADMIN_TOKEN',
  'OINGATE_OIN_FIELD',
  'OINGATE_OIN_HEADER',
  'OINGATE_OIN_PATTERN',
  'OINGATE_TENANT_CLAIM',
  'OINGATE_FORWARD_CLAIMS',
  'OINGATE_ISSUER',
  'OINGATE_AUDIENCE',
  'OINGATE_CLOCK_TOLERANCE',
  'OINGATE_MAX_TOKEN_LIFETIME',
  'OINGATE_BODY_LIMIT',
  'OINGATE_UPSTREAM_TIMEOUT_MS',
  'OINGATE_LOG_LEVEL',
  'OINGATE_CLIENT_TIMEOUT_MS',
  'OINGATE_MAX_CONNECTIONS',
  'OINGATE_DRAIN_SECONDS',
  'OINGATE_ADMIN_HOSTS',
  'OINGATE_JWKS_TTL',
  'OINGATE_JWKS_MAX_STALE',
  'OINGATE_PG_RESYNC_SECONDS',
  'OINGATE_RATE_LIMIT_REDIS',
  'OINGATE_RATE_LIMIT_TIMEOUT_MS',
  'OINGATE_TLS_CERT',
  'OINGATE_TLS_KEY',
  'OINGATE_TLS_CLIENT_CA',
  'OINGATE_TLS_CRL',
  'OINGATE_CLIENT_CERT_HEADER',
  'OINGATE_METRICS_TENANT_LABELS',
  'OINGATE_REQUIRE_JTI',
];
const KNOWN = new Set(KNOWN_VARIABLES);

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

type Env = Readonly<Record<string, string | undefined>>;

/** An empty variable counts as unset, as compose files and shells often leave them. */
function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const text = read(env, name);
  if (text === undefined) return fallback;
  const value = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new SettingsError(name, `must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

/** `true` or `false` (any case); anything else is refused, so that a typo never reads as off. */
function flag(env: Env, name: string, fallback: boolean): boolean {
  const text = read(env, name);
  if (text === undefined) return fallback;
  const lower = text.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw new SettingsError(name, `must be true or false, got "${text}"`);
}

function listenAddress(env: Env, name: string, fallback: string): ListenAddress {
  const text = read(env, name) ?? fallback;
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s\[\]]+)):([0-9]{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new SettingsError(name, `must be host:port (e.g. 0.0.0.0:8080 or [::]:8080), got "${text}"`);
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

function store(env: Env): StoreSetting {
  const name = 'OINGATE_STORE';
  const text = read(env, name) ?? 'file:config/whitelist.json';
  if (text.startsWith('file:')) {
    const path = text.slice('file:'.length);
    if (path === '') throw new SettingsError(name, 'file: needs a path, e.g. file:config/whitelist.json');
    return { kind: 'file', path };
  }
  if (/^postgres(ql)?:\/\//.test(text)) {
    try {
      new URL(text);
    } catch {
      throw new SettingsError(name, 'is not a valid postgres:// URL');
    }
    return { kind: 'postgres', url: text };
  }
  // The value is not echoed: it may hold a password.
  throw new SettingsError(name, 'must be file:PATH or a postgres:// (postgresql://) URL');
}

function upstream(env: Env): URL | undefined {
  const name = 'OINGATE_UPSTREAM';
  const text = read(env, name);
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new SettingsError(name, `must be a URL like http://127.0.0.1:3000, got "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SettingsError(name, 'must use http or https');
  if (url.username || url.password) throw new SettingsError(name, 'must not contain credentials');
  if (url.pathname !== '/' || url.search || url.hash) {
    throw new SettingsError(name, 'must be a base URL without path, query or fragment (requests keep their own path)');
  }
  return url;
}

function trustedProxies(env: Env): { set: CidrSet; texts: string[] } {
  const name = 'OINGATE_TRUSTED_PROXIES';
  const text = read(env, name);
  if (text === undefined) return { set: new CidrSet([]), texts: [] };
  try {
    const cidrs = text.split(',').map((part) => parseCidr(part.trim()));
    return { set: new CidrSet(cidrs), texts: cidrs.map((c) => c.text) };
  } catch (error) {
    if (error instanceof CidrError) throw new SettingsError(name, error.message);
    throw error;
  }
}

function oinPattern(env: Env): RegExp {
  const name = 'OINGATE_OIN_PATTERN';
  const text = read(env, name) ?? '^[0-9]{20}$';
  // An unanchored pattern would accept any value that merely contains an OIN.
  if (!text.startsWith('^') || !text.endsWith('$')) {
    throw new SettingsError(name, `must be anchored with ^ and $, got "${text}"`);
  }
  try {
    new RegExp(text, 'u');
    // Anchored as a whole: "^[0-9]{20}|x$" must not mean "20 digits, then anything".
    return new RegExp(`^(?:${text.slice(1, -1)})$`, 'u');
  } catch (error) {
    throw new SettingsError(name, `is not a valid regular expression: ${(error as Error).message}`);
  }
}

function oinField(env: Env): string[] {
  const name = 'OINGATE_OIN_FIELD';
  try {
    return splitDottedPath(read(env, name) ?? 'oin');
  } catch (error) {
    throw new SettingsError(name, (error as Error).message);
  }
}

function oinHeader(env: Env): string {
  const name = 'OINGATE_OIN_HEADER';
  const text = read(env, name) ?? 'x-oin';
  if (!HEADER_NAME.test(text)) throw new SettingsError(name, `is not a valid header name: "${text}"`);
  return text.toLowerCase();
}

function adminToken(env: Env): string | undefined {
  const name = 'OINGATE_ADMIN_TOKEN';
  const text = read(env, name);
  if (text === undefined) return undefined;
  if (text.length < 16) throw new SettingsError(name, 'must be at least 16 characters');
  if (!/^[\x21-\x7e]+$/.test(text)) throw new SettingsError(name, 'must be visible ASCII without spaces');
  return text;
}

// A DNS name (RFC 1123 labels), lower-cased before the check.
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
// A claim name becomes part of a header name: token characters only.
const CLAIM_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

function list(env: Env, name: string): string[] {
  const text = read(env, name);
  if (text === undefined) return [];
  const items = text.split(',').map((part) => part.trim());
  if (items.some((item) => item === '')) throw new SettingsError(name, `has an empty entry in "${text}"`);
  return items;
}

function adminHosts(env: Env): string[] {
  const name = 'OINGATE_ADMIN_HOSTS';
  return list(env, name).map((host) => {
    const lower = host.toLowerCase();
    if (!HOST_NAME.test(lower)) throw new SettingsError(name, `"${host}" is not a host name`);
    return lower;
  });
}

function forwardClaims(env: Env): string[] {
  const name = 'OINGATE_FORWARD_CLAIMS';
  const claims = list(env, name);
  const headers = new Set<string>();
  for (const claim of claims) {
    if (!CLAIM_NAME.test(claim)) throw new SettingsError(name, `"${claim}" cannot be part of a header name`);
    // Two claims that differ only in case would share one header.
    const header = claim.toLowerCase().replaceAll('_', '-');
    if (headers.has(header)) throw new SettingsError(name, `"${claim}" would share its header with another claim`);
    headers.add(header);
  }
  return claims;
}

function rateLimitRedis(env: Env): string | undefined {
  const name = 'OINGATE_RATE_LIMIT_REDIS';
  const text = read(env, name);
  if (text === undefined) return undefined;
  try {
    // The message shows the URL without user, password or query.
    describeUrl(text);
  } catch (error) {
    if (error instanceof RedisUrlError) throw new SettingsError(name, `${error.message}, e.g. redis://127.0.0.1:6379/0`);
    throw error;
  }
  return text;
}

interface TlsSettings {
  readonly tls: Settings['tls'];
  readonly tlsClientCaFile: string | undefined;
  readonly tlsCrlFile: string | undefined;
  readonly clientCertHeader: string | undefined;
}

/** The TLS files and the client-certificate header, with the rules that tie them together (contract §9). */
function tlsSettings(env: Env): TlsSettings {
  const certFile = read(env, 'OINGATE_TLS_CERT');
  const keyFile = read(env, 'OINGATE_TLS_KEY');
  if (certFile !== undefined && keyFile === undefined) throw new SettingsError('OINGATE_TLS_KEY', 'must be set together with OINGATE_TLS_CERT');
  if (keyFile !== undefined && certFile === undefined) throw new SettingsError('OINGATE_TLS_CERT', 'must be set together with OINGATE_TLS_KEY');
  const header = read(env, 'OINGATE_CLIENT_CERT_HEADER');
  if (header !== undefined && !HEADER_NAME.test(header)) {
    throw new SettingsError('OINGATE_CLIENT_CERT_HEADER', `is not a valid header name: "${header}"`);
  }
  const caFile = read(env, 'OINGATE_TLS_CLIENT_CA');
  const crlFile = read(env, 'OINGATE_TLS_CRL');
  if (crlFile !== undefined && caFile === undefined) {
    // A CRL can only be checked against the CAs that signed it.
    throw new SettingsError('OINGATE_TLS_CRL', 'needs OINGATE_TLS_CLIENT_CA (the CAs whose CRLs it holds)');
  }
  if (header !== undefined && caFile === undefined) {
    // A header certificate is verified by oingate itself, never taken on the proxy's word.
    throw new SettingsError('OINGATE_CLIENT_CERT_HEADER', 'needs OINGATE_TLS_CLIENT_CA to verify the certificates it carries');
  }
  if (header !== undefined && read(env, 'OINGATE_TRUSTED_PROXIES') === undefined) {
    // It would never be believed: say so rather than ignore a security setting.
    throw new SettingsError('OINGATE_CLIENT_CERT_HEADER', 'needs OINGATE_TRUSTED_PROXIES (the header is believed only from them)');
  }
  return {
    tls: certFile !== undefined && keyFile !== undefined ? Object.freeze({ certFile, keyFile }) : undefined,
    tlsClientCaFile: caFile,
    tlsCrlFile: crlFile,
    clientCertHeader: header?.toLowerCase(),
  };
}

/** Refuses any OINGATE_ variable that is not in {@link KNOWN_VARIABLES}, naming it. */
function refuseUnknown(env: Env): void {
  for (const name of Object.keys(env).sort()) {
    if (name.startsWith('OINGATE_') && !KNOWN.has(name)) {
      throw new SettingsError(name, 'is not a setting of this oingate version (a typo?); unset it or correct the name');
    }
  }
}

/** Reads and validates every setting; throws the first SettingsError. */
export function loadSettings(env: Env = process.env): Settings {
  refuseUnknown(env);
  const logLevel = read(env, 'OINGATE_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new SettingsError('OINGATE_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const claim = read(env, 'OINGATE_TENANT_CLAIM') ?? 'oin';
  const trusted = trustedProxies(env);
  return Object.freeze({
    listen: listenAddress(env, 'OINGATE_LISTEN', '0.0.0.0:8080'),
    adminListen: listenAddress(env, 'OINGATE_ADMIN_LISTEN', '127.0.0.1:9090'),
    store: store(env),
    upstream: upstream(env),
    trustedProxies: trusted.set,
    trustedProxyTexts: trusted.texts,
    adminToken: adminToken(env),
    oinField: oinField(env),
    oinHeader: oinHeader(env),
    oinPattern: oinPattern(env),
    tenantClaim: claim,
    issuer: read(env, 'OINGATE_ISSUER'),
    audience: read(env, 'OINGATE_AUDIENCE'),
    clockToleranceSeconds: integer(env, 'OINGATE_CLOCK_TOLERANCE', 30, 0, 300),
    maxTokenLifetimeSeconds: integer(env, 'OINGATE_MAX_TOKEN_LIFETIME', 86400, 1, 31_536_000),
    bodyLimitBytes: integer(env, 'OINGATE_BODY_LIMIT', 1_048_576, 1, 104_857_600),
    upstreamTimeoutMs: integer(env, 'OINGATE_UPSTREAM_TIMEOUT_MS', 30_000, 1, 3_600_000),
    logLevel,
    jwksTtlSeconds: integer(env, 'OINGATE_JWKS_TTL', 300, 1, 86_400),
    jwksMaxStaleSeconds: integer(env, 'OINGATE_JWKS_MAX_STALE', 86_400, 0, 2_592_000),
    pgResyncSeconds: integer(env, 'OINGATE_PG_RESYNC_SECONDS', 60, 1, 86_400),
    clientTimeoutMs: integer(env, 'OINGATE_CLIENT_TIMEOUT_MS', 10_000, 100, 600_000),
    maxConnections: integer(env, 'OINGATE_MAX_CONNECTIONS', 10_000, 1, 1_000_000),
    drainSeconds: integer(env, 'OINGATE_DRAIN_SECONDS', 10, 0, 3_600),
    adminHosts: adminHosts(env),
    forwardClaims: forwardClaims(env),
    rateLimitRedis: rateLimitRedis(env),
    rateLimitTimeoutMs: integer(env, 'OINGATE_RATE_LIMIT_TIMEOUT_MS', DEFAULT_COMMAND_TIMEOUT_MS, 1, 10_000),
    ...tlsSettings(env),
    metricsTenantLabels: flag(env, 'OINGATE_METRICS_TENANT_LABELS', false),
    requireJti: flag(env, 'OINGATE_REQUIRE_JTI', false),
  });
}

/** The library's options: the settings' names without OINGATE_, in camelCase. */
export type SettingsOptions = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>;

function variableOf(option: string): string {
  return `OINGATE_${option.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

function optionOf(variable: string): string {
  return variable
    .slice('OINGATE_'.length)
    .toLowerCase()
    .replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/**
 * Settings from an options object (`{ store, trustedProxies, bodyLimit }`),
 * with the same defaults and validation as the environment; the error names
 * the option. Reads no environment variable. `extra` names options the
 * caller handles itself (e.g. `logger`), which are skipped here.
 */
export function settingsFromOptions(options: SettingsOptions, extra: readonly string[] = []): Settings {
  const env: Record<string, string> = {};
  for (const [option, value] of Object.entries(options)) {
    if (extra.includes(option) || value === undefined) continue;
    const variable = variableOf(option);
    if (!/^[a-z][A-Za-z0-9]*$/.test(option) || !KNOWN.has(variable)) {
      throw new SettingsError(option, 'is not an option of this oingate version (a typo?)');
    }
    if (Array.isArray(value)) env[variable] = value.join(',');
    else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') env[variable] = String(value);
    else throw new SettingsError(option, 'must be a string, a number, a boolean or an array of strings');
  }
  try {
    return loadSettings(env);
  } catch (error) {
    if (error instanceof SettingsError) {
      const option = optionOf(error.variable);
      throw new SettingsError(option, error.message.slice(error.variable.length + 2));
    }
    throw error;
  }
}

/**
 * The settings a whitelist is validated under: its OINs' pattern, and
 * whether a client certificate can reach the gate at all (settings require
 * the CA bundle for the front proxy's header, so the bundle alone says so).
 */
export function validationRules(settings: Settings): { readonly oinPattern: RegExp; readonly certificatesConfigured: boolean } {
  return { oinPattern: settings.oinPattern, certificatesConfigured: settings.tlsClientCaFile !== undefined };
}
