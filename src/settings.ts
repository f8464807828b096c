import { CidrError, CidrSet, parseCidr } from './ip/cidr.ts';
import { splitDottedPath } from './json/strict-json.ts';

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

/** Reads and validates every setting; throws the first SettingsError. */
export function loadSettings(env: Env = process.env): Settings {
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
  });
}
