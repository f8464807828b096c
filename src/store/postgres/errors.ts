/**
 * Errors of the PostgreSQL store, for the gate (PostgresSource) and the
 * command line (migrate, import) alike: never a password in a message, and
 * one hint when the schema is missing.
 */

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

const QUERY_PASSWORD = /([?&\s]password=)([^&#\s]*)/gi;

/**
 * The connection string with any password (in the userinfo or a `password`
 * query parameter) replaced by `***`. Works on malformed strings too.
 */
export function redactConnectionString(url: string): string {
  let out = url;
  const pw = userinfoPassword(out);
  if (pw) out = out.slice(0, pw.start) + '***' + out.slice(pw.end);
  return out.replace(QUERY_PASSWORD, '$1***');
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Returns a function that removes every form of the connection string's
 * password from a text (raw, percent-decoded, and the URL itself).
 */
export function passwordScrubber(url: string): (text: string) => string {
  const secrets = new Set<string>();
  const pw = userinfoPassword(url);
  if (pw) {
    const raw = url.slice(pw.start, pw.end);
    secrets.add(raw);
    secrets.add(safeDecode(raw));
  }
  try {
    // The password as a URL parser (and so pg) reads it, in case it differs.
    const raw = new URL(url).password;
    secrets.add(raw);
    secrets.add(safeDecode(raw));
  } catch {
    // not parseable: the heuristic above is all there is
  }
  for (const m of url.matchAll(QUERY_PASSWORD)) {
    const raw = m[2] ?? '';
    secrets.add(raw);
    secrets.add(safeDecode(raw));
    secrets.add(safeDecode(raw.replace(/\+/g, ' ')));
  }
  secrets.delete('');
  secrets.delete('***');
  // Longest first, so a secret that contains another is removed whole.
  const list = [...secrets].sort((a, b) => b.length - a.length);
  const redacted = redactConnectionString(url);
  return (text: string) => {
    let out = text.split(url).join(redacted);
    for (const s of list) out = out.split(s).join('***');
    return out;
  };
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
