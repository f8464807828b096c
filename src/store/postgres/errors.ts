/**
 * Errors of the PostgreSQL store, for the gate (PostgresSource) and the
 * command line (migrate, import) alike: never a password in a message, and
 * one hint when the schema is missing.
 */
import { parse as parseConnectionString } from 'pg-connection-string';

/** Finds the password part of a URL's userinfo; null when there is none. */
function userinfoPassword(url: string): { start: number; end: number } | null {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (!scheme) return null;
  const start = scheme[0].length;
  // The userinfo ends at the last '@'. Taking the last one in the whole string
  // (rather than in the authority only) errs towards hiding too much when a
  // password holds an unescaped '/', '?' or '#'.
  const at = url.lastIndexOf('@');
  if (at < start) return null;
  const colon = url.indexOf(':', start);
  if (colon < 0 || colon > at) return null;
  return { start: colon + 1, end: at };
}

type ConnectionConfig = ReturnType<typeof parseConnectionString>;

// The parser reads these files; naming the store must not depend on them.
const FILE_PARAMETERS = new Set(['sslcert', 'sslkey', 'sslrootcert']);

function withoutFileParameters(url: string): string {
  const query = url.indexOf('?');
  if (query < 0) return url;
  const hash = url.indexOf('#', query);
  const end = hash < 0 ? url.length : hash;
  const kept = url
    .slice(query + 1, end)
    .split('&')
    .filter((pair) => !FILE_PARAMETERS.has(safeDecode(pair.split('=')[0] ?? '').toLowerCase()));
  return `${url.slice(0, query)}${kept.length ? `?${kept.join('&')}` : ''}${url.slice(end)}`;
}

/** The config pg itself derives from the string; undefined when it cannot parse it. */
function parsed(url: string): ConnectionConfig | undefined {
  try {
    return parseConnectionString(withoutFileParameters(url));
  } catch {
    return undefined;
  }
}

/** `postgres://user@host:port/database` from the parsed config, not yet scrubbed. */
function plainDescription(url: string): string {
  const config = parsed(url);
  if (config === undefined) return 'postgres://(unparseable connection string)';
  const user = config.user ? `${encodeURIComponent(config.user)}@` : '';
  let host = config.host ?? '';
  // A socket directory is a path, not a host name; IPv6 literals get brackets.
  if (host.startsWith('/')) host = `(socket ${host})`;
  else if (host.includes(':')) host = `[${host}]`;
  const port = config.port ? `:${config.port}` : '';
  const database = config.database ? encodeURIComponent(config.database) : '';
  return `postgres://${user}${host}${port}/${database}`;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Every form a secret of the connection string may take in a text. */
function secretsOf(url: string): string[] {
  const secrets = new Set<string>();
  const add = (raw: string | null | undefined): void => {
    if (!raw) return;
    secrets.add(raw);
    secrets.add(safeDecode(raw));
    secrets.add(safeDecode(raw.replace(/\+/g, ' ')));
  };
  const pw = userinfoPassword(url);
  if (pw) add(url.slice(pw.start, pw.end));
  try {
    // The password as a URL parser reads it, in case it differs.
    add(new URL(url).password);
  } catch {
    // not parseable: the heuristic above is all there is
  }
  // What pg will actually send: a query parameter (`password=`, or a
  // percent-encoded name such as `pass%77ord=`) overrides the userinfo.
  const config = parsed(url);
  add(config?.password);
  add((config as { sslpassword?: string } | undefined)?.sslpassword);
  // Any query parameter whose name, decoded, speaks of a password.
  const query = url.indexOf('?');
  if (query >= 0) {
    for (const pair of url.slice(query + 1).split(/[&#]/)) {
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      if (/pass/i.test(safeDecode(pair.slice(0, eq).replace(/\+/g, ' ')))) add(pair.slice(eq + 1));
    }
  }
  secrets.delete('');
  secrets.delete('***');
  // Longest first, so a secret that contains another is removed whole.
  return [...secrets].sort((a, b) => b.length - a.length);
}

/**
 * Returns a function that removes every form of the connection string's
 * secrets from a text (raw, percent-decoded, and the URL itself, which is
 * replaced by its description).
 */
export function passwordScrubber(url: string): (text: string) => string {
  const list = secretsOf(url);
  const strip = (text: string): string => {
    let out = text;
    for (const s of list) out = out.split(s).join('***');
    return out;
  };
  const described = strip(plainDescription(url));
  return (text: string) => strip(text.split(url).join(described));
}

/**
 * Names the store as `postgres://user@host:port/database`, built from the
 * parsed connection config, never from the URL text: the text may carry a
 * password in its userinfo or in any (percent-encoded) query parameter, so no
 * query parameter is shown at all. Scrubbed as well, since a user name may
 * equal the password.
 */
export function describeConnectionString(url: string): string {
  return passwordScrubber(url)(plainDescription(url));
}

/** An error whose message and properties carry no password. */
export class PostgresStoreError extends Error {
  /** SQLSTATE or Node error code of the underlying error, when there was one. */
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.name = 'PostgresStoreError';
    this.code = code;
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    // AggregateError (e.g. ECONNREFUSED on both ::1 and 127.0.0.1) has an empty message.
    if (!err.message && err instanceof AggregateError) {
      return err.errors.map(errorMessage).join('; ') || err.name;
    }
    return err.message || err.name;
  }
  return String(err);
}

export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

// SQLSTATEs meaning the schema is not there or not current.
const SCHEMA_MISSING = new Set(['3F000', '42P01', '42703']);

/**
 * `err` rephrased for `what` on the store `description`, scrubbed of the
 * password; a missing or outdated schema says to run `oingate migrate`.
 */
export function storeError(err: unknown, what: string, description: string, scrub: (text: string) => string): PostgresStoreError {
  const code = errorCode(err);
  const message = scrub(errorMessage(err));
  if (code !== undefined && SCHEMA_MISSING.has(code)) {
    return new PostgresStoreError(
      `${what} ${description}: the oingate schema is missing or out of date (${message}); run \`oingate migrate\``,
      code,
    );
  }
  return new PostgresStoreError(`${what} ${description}: ${message}`, code);
}
