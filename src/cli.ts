import jwt from 'jsonwebtoken';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildSnapshot, type Snapshot } from './model/snapshot.ts';
import { WhitelistError } from './model/errors.ts';
import { isHmac } from './model/algorithms.ts';
import { loadSettings, SettingsError, type Settings } from './settings.ts';
import { BUILD_VERSION } from './observe/build-info.ts';
import { EXPIRY_WARNING_MS } from './observe/metrics.ts';
import { createSource } from './store/create.ts';
import { passwordScrubber } from './store/postgres/errors.ts';
import { readWhitelistFile } from './store/read-file.ts';
import { describeIssues, withFirstLoadStarted } from './store/source.ts';
import { MAX_REVOCATION_TEXT_LENGTH } from './model/limits.ts';
import { isoTimeMs } from './model/values.ts';
import { newJti } from './token/jti.ts';
import { isUsable, type TenantKey } from './token/key.ts';
import type { WhitelistDocument } from './model/document.ts';

const USAGE = `usage:
  oingate serve                         start the gate (settings from OINGATE_* variables)
  oingate check [FILE]                  validate a whitelist file (default: the configured store)
  oingate token --oin OIN [--kid KID] [--ttl 1h] [--note TEXT]
                                        sign a token with a tenant's HS key from the store;
                                        PostgreSQL: records its jti (never the token)
  oingate tokens [--oin OIN] [--json]   list the tokens recorded in the PostgreSQL store
  oingate revoke --jti JTI [--reason TEXT] [--oin OIN [--expires ISO]]
                                        revoke one token (--oin for a token oingate did not issue)
  oingate revoke --oin OIN --all        revoke every token the tenant was issued up to now
  oingate revoke --prune                delete revocations whose token has expired
  oingate migrate                       apply sql/ to the PostgreSQL store
  oingate import FILE                   replace the PostgreSQL whitelist with FILE, in one transaction
  oingate version                       print the version (also --version)`;

/** A command-line failure: printed as one line, exit code attached. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const SQL_DIR = fileURLToPath(new URL('../sql/', import.meta.url));

/** The configured store's whitelist, validated; issues name rows the way the store does. */
async function loadFromStore(settings: Settings, place: string): Promise<Snapshot> {
  const source = await createSource(settings);
  let document: unknown;
  try {
    document = await source.load();
  } finally {
    await source.close();
  }
  try {
    return await buildSnapshot(document, { oinPattern: settings.oinPattern });
  } catch (error) {
    throw refusal(describeIssues(source, document, error), place);
  }
}

function postgresUrl(settings: Settings, command: string): string {
  if (settings.store.kind !== 'postgres') {
    throw new CliError(`${command} needs OINGATE_STORE to be a postgres:// URL`, 2);
  }
  return settings.store.url;
}

function listIssues(error: WhitelistError): string {
  return error.issues.map((issue) => `  ${issue.path}: ${issue.message}`).join('\n');
}

function refusal(error: unknown, place: string): unknown {
  if (!(error instanceof WhitelistError)) return error;
  return new CliError(`${place}: ${error.issues.length} error(s)\n${listIssues(error)}`);
}

async function validated(document: unknown, settings: Settings, place: string): Promise<Snapshot> {
  try {
    return await buildSnapshot(document, { oinPattern: settings.oinPattern });
  } catch (error) {
    throw refusal(error, place);
  }
}

/**
 * What `check` warns about without failing: keys that have expired or expire
 * within 14 days, and JWKS tenants with no audience at all, since their
 * identity provider's tokens for any other service would pass.
 */
function whitelistWarnings(snapshot: Snapshot, globalAudience: string | undefined, nowMs: number, certificatesConfigured = true): string[] {
  const warnings: string[] = [];
  for (const tenant of snapshot.tenants.values()) {
    // Not an error here: check may run where the serving settings are not set.
    if (tenant.authentication !== undefined && tenant.authentication !== 'token' && !certificatesConfigured) {
      warnings.push(
        `tenant ${tenant.oin} needs a client certificate ("${tenant.authentication}"), but neither OINGATE_TLS_CLIENT_CA nor ` +
          'OINGATE_CLIENT_CERT_HEADER is set: oingate serve with these settings refuses this whitelist',
      );
    }
    for (const key of tenant.keys.list) {
      if (!key.enabled || key.expiresAt === undefined) continue;
      const at = new Date(key.expiresAt).toISOString();
      if (key.expiresAt <= nowMs) warnings.push(`tenant ${tenant.oin} key "${key.kid}" expired at ${at}`);
      else if (key.expiresAt <= nowMs + EXPIRY_WARNING_MS) warnings.push(`tenant ${tenant.oin} key "${key.kid}" expires at ${at}, within 14 days`);
    }
    if (tenant.jwksUri !== undefined && tenant.audience === undefined && globalAudience === undefined) {
      warnings.push(
        `tenant ${tenant.oin} takes keys from its JWKS but has no audience (neither its own "audience" nor OINGATE_AUDIENCE): ` +
          "its identity provider's tokens for other services would pass",
      );
    }
  }
  return warnings;
}

async function check(settings: Settings, file: string | undefined): Promise<void> {
  const place = file ?? (settings.store.kind === 'file' ? settings.store.path : 'postgres store');
  let snapshot: Snapshot;
  if (file) {
    const document = await readWhitelistFile(file).catch((error: Error) => {
      throw new CliError(error.message);
    });
    snapshot = await validated(document, settings, place);
  } else {
    snapshot = await loadFromStore(settings, place);
  }
  let keys = 0;
  let cidrs = 0;
  for (const tenant of snapshot.tenants.values()) {
    keys += tenant.keys.list.length;
    cidrs += tenant.cidrTexts.length;
  }
  const revoked = snapshot.revokedTokens > 0 ? `, ${snapshot.revokedTokens} revoked token(s)` : '';
  console.log(`${place}: ok, ${snapshot.tenants.size} tenant(s), ${cidrs} CIDR(s), ${keys} key(s)${revoked}, version ${snapshot.version}`);
  const certificatesConfigured = settings.tlsClientCaFile !== undefined;
  for (const warning of whitelistWarnings(snapshot, settings.audience, Date.now(), certificatesConfigured)) console.error(`warning: ${warning}`);
}

/** The usable HS key that stays usable longest (no expiry beats any); the first of equals. */
function longestUsableHmacKey(keys: readonly TenantKey[], nowMs: number): TenantKey | undefined {
  let best: TenantKey | undefined;
  for (const key of keys) {
    if (!isHmac(key.alg) || !isUsable(key, nowMs)) continue;
    if (best === undefined || (key.expiresAt ?? Infinity) > (best.expiresAt ?? Infinity)) best = key;
  }
  return best;
}

const TTL = /^([1-9][0-9]*)([smhd]?)$/;
const UNIT_SECONDS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };

function parseTtl(text: string): number {
  const match = TTL.exec(text);
  if (!match) throw new CliError(`--ttl must be a number with an optional unit s, m, h or d (e.g. 1h), got "${text}"`, 2);
  return Number(match[1]) * (UNIT_SECONDS[match[2] as string] as number);
}


async function token(settings: Settings, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { oin: { type: 'string' }, kid: { type: 'string' }, ttl: { type: 'string', default: '1h' }, note: { type: 'string' } },
    strict: true,
  });
  if (!values.oin) throw new CliError('token needs --oin OIN', 2);
  // The file store keeps no record: a note there would be silently lost.
  if (values.note !== undefined && settings.store.kind !== 'postgres') {
    throw new CliError('--note needs the PostgreSQL store (the file store keeps no record of issued tokens)', 2);
  }
  const ttl = parseTtl(values.ttl as string);
  if (ttl > settings.maxTokenLifetimeSeconds) {
    throw new CliError(`--ttl ${values.ttl} is longer than OINGATE_MAX_TOKEN_LIFETIME (${settings.maxTokenLifetimeSeconds} s)`, 2);
  }
  const snapshot = await loadFromStore(settings, 'store');
  const tenant = snapshot.tenants.get(values.oin);
  if (!tenant) throw new CliError(`no tenant with OIN ${values.oin} in the store`);
  const now = Date.now();
  const key = values.kid
    ? tenant.keys.byKid.get(values.kid)
    : longestUsableHmacKey(tenant.keys.list, now);
  if (!key) throw new CliError(values.kid ? `tenant ${values.oin} has no key "${values.kid}"` : `tenant ${values.oin} has no usable HS key`);
  if (!isHmac(key.alg)) {
    throw new CliError(`key "${key.kid}" is ${key.alg}: oingate holds only its public key; sign with the tenant's private key instead`);
  }
  if (!isUsable(key, now)) throw new CliError(`key "${key.kid}" is disabled or outside its validity window`);
  const issuedAt = await issueSecond(tenant.tokensIssuedAfter, now);
  const jti = newJti();
  const claims: Record<string, unknown> = { [settings.tenantClaim]: tenant.oin, iat: issuedAt, exp: issuedAt + ttl, jti };
  // The tenant's own issuer and audience replace the global ones, as at verification.
  const issuer = tenant.issuer ?? settings.issuer;
  const audience = tenant.audience ?? settings.audience;
  if (issuer) claims['iss'] = issuer;
  if (audience) claims['aud'] = audience;
  // iat is in the claims: jsonwebtoken keeps it (noTimestamp would delete it).
  const signed = jwt.sign(claims, key.key, { algorithm: key.alg, keyid: key.kid });
  if (settings.store.kind === 'postgres') {
    // Recorded before it is printed: a token that could not be recorded is never handed out.
    const { recordIssuedToken } = await import('./store/postgres/issued-tokens.ts');
    await recordIssuedToken(settings.store.url, {
      jti,
      oin: tenant.oin,
      kid: key.kid,
      issuedAt: new Date(issuedAt * 1000),
      expiresAt: new Date((issuedAt + ttl) * 1000),
      note: values.note ?? null,
    });
  } else {
    // On stderr, so that stdout stays the token alone.
    console.error(`jti: ${jti}`);
  }
  console.log(signed);
}

/**
 * The `iat` of a token minted now: the current second, or the next one when
 * the tenant revoked everything up to this second (`revoke --all` a moment
 * ago), so that the token is not born revoked.
 */
async function issueSecond(tokensIssuedAfter: number | undefined, now: number): Promise<number> {
  const second = Math.floor(now / 1000);
  if (tokensIssuedAfter === undefined || second * 1000 > tokensIssuedAfter) return second;
  const first = Math.floor(tokensIssuedAfter / 1000) + 1;
  if (first * 1000 - now > 2000) {
    throw new CliError(`tenant revoked every token issued up to ${new Date(tokensIssuedAfter).toISOString()}, a time still ahead`);
  }
  await new Promise((resolve) => setTimeout(resolve, first * 1000 - now));
  return first;
}

async function revoke(settings: Settings, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      jti: { type: 'string' },
      oin: { type: 'string' },
      reason: { type: 'string' },
      expires: { type: 'string' },
      all: { type: 'boolean', default: false },
      prune: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const given = (['jti', 'oin', 'reason', 'expires'] as const).filter((name) => values[name] !== undefined);
  const usage = 'revoke needs --jti JTI [--reason TEXT] [--oin OIN [--expires ISO]], or --oin OIN --all, or --prune';
  if (values.oin !== undefined && !settings.oinPattern.test(values.oin)) {
    throw new CliError(`--oin "${values.oin}" does not match OINGATE_OIN_PATTERN`, 2);
  }
  if (values.prune && (values.all || given.length > 0)) throw new CliError(`--prune takes no other option; ${usage}`, 2);
  if (values.all && (values.oin === undefined || given.length > 1)) throw new CliError(`--all takes --oin OIN and nothing else; ${usage}`, 2);
  if (!values.prune && !values.all && values.jti === undefined) throw new CliError(usage, 2);
  if (values.expires !== undefined && values.oin === undefined) throw new CliError('--expires is for a token not in the record, named with --oin', 2);
  // Read as the whitelist reads a time: ISO-8601 with a zone.
  const expiresAt = values.expires === undefined ? undefined : isoTimeMs(values.expires);
  if (expiresAt !== undefined && Number.isNaN(expiresAt)) {
    throw new CliError(`--expires "${values.expires}" is not an ISO-8601 date-time with a zone, e.g. 2026-12-01T00:00:00Z`, 2);
  }
  // The gate forgets such a revocation at once (the token is refused as expired): saying "revoked" would mislead.
  if (expiresAt !== undefined && expiresAt < Date.now() - settings.clockToleranceSeconds * 1000) {
    throw new CliError(`--expires ${values.expires} has passed (beyond OINGATE_CLOCK_TOLERANCE): that token is refused as expired already`, 2);
  }
  for (const name of ['jti', 'reason'] as const) {
    const value = values[name];
    if (value !== undefined && (value.length === 0 || value.length > MAX_REVOCATION_TEXT_LENGTH)) {
      throw new CliError(`--${name} must be 1 to ${MAX_REVOCATION_TEXT_LENGTH} characters`, 2);
    }
  }
  if (settings.store.kind !== 'postgres') {
    // The file is the operator's (often a ConfigMap): oingate does not rewrite it.
    const entry = values.all
      ? `"tokensIssuedAfter": "${new Date().toISOString()}" in tenant ${values.oin}`
      : `${JSON.stringify({ jti: values.jti, oin: values.oin ?? 'OIN', ...(values.expires ? { expiresAt: values.expires } : {}), ...(values.reason ? { reason: values.reason } : {}) })} to "revokedTokens"`;
    if (values.prune) throw new CliError('revoke --prune works on the PostgreSQL store; with the file store, remove the entries of expired tokens from "revokedTokens"');
    throw new CliError(`revoke writes to the PostgreSQL store; with the file store, add ${entry} in the file`);
  }
  const url = settings.store.url;
  const { pruneRevocations, revokeAllOf, revokeToken, RevocationError } = await import('./store/postgres/revocations.ts');
  try {
    if (values.prune) {
      const deleted = await pruneRevocations(url, settings.clockToleranceSeconds);
      console.log(`pruned ${deleted} revocation(s) of expired tokens`);
    } else if (values.all) {
      const cutoff = await revokeAllOf(url, values.oin as string);
      console.log(`revoked every token of tenant ${values.oin} issued up to ${isoSeconds(cutoff)}`);
    } else {
      const result = await revokeToken(url, {
        jti: values.jti as string,
        ...(values.oin !== undefined ? { oin: values.oin } : {}),
        ...(values.reason !== undefined ? { reason: values.reason } : {}),
        ...(expiresAt !== undefined ? { expiresAt: new Date(expiresAt) } : {}),
      });
      const expiry = result.expiresAt ? `, expires ${isoSeconds(result.expiresAt)}` : '';
      console.log(`${result.revoked ? 'revoked' : 'already revoked:'} jti ${result.jti} of tenant ${result.oin}${expiry}`);
    }
  } catch (error) {
    if (error instanceof RevocationError) throw new CliError(error.message);
    throw error;
  }
}

/** An instant as ISO-8601 to the second, as the table shows it. */
function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Left-aligned columns, two spaces apart. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

async function tokens(settings: Settings, args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { oin: { type: 'string' }, json: { type: 'boolean', default: false } }, strict: true });
  if (settings.store.kind !== 'postgres') {
    throw new CliError('tokens needs the PostgreSQL store: the file store keeps no record of issued tokens (`oingate token` printed each jti on stderr)');
  }
  if (values.oin !== undefined && !settings.oinPattern.test(values.oin)) {
    throw new CliError(`--oin "${values.oin}" does not match OINGATE_OIN_PATTERN`, 2);
  }
  const { listIssuedTokens } = await import('./store/postgres/issued-tokens.ts');
  const listed = await listIssuedTokens(settings.store.url, values.oin);
  if (values.json) {
    const out = listed.map((t) => ({
      jti: t.jti,
      oin: t.oin,
      kid: t.kid,
      issuedAt: t.issuedAt.toISOString(),
      expiresAt: t.expiresAt.toISOString(),
      revoked: t.revoked,
      note: t.note,
    }));
    console.log(JSON.stringify(out, null, 2));
    return;
  }
  const rows = listed.map((t) => [t.jti, t.oin, t.kid, isoSeconds(t.issuedAt), isoSeconds(t.expiresAt), t.revoked ? 'yes' : 'no']);
  console.log(table(['JTI', 'OIN', 'KID', 'ISSUED', 'EXPIRES', 'REVOKED'], rows));
}

async function serve(settings: Settings): Promise<void> {
  const { createLogger, logLastLine } = await import('./observe/logger.ts');
  const logger = createLogger(settings.logLevel);
  type Started = Awaited<ReturnType<typeof import('./service.ts').startService>>;
  let service: Started | undefined;
  let stopping: string | undefined;
  const stop = (svc: Started, signal: string) => {
    const startedAt = performance.now();
    logger.info({ signal, drainSeconds: settings.drainSeconds }, 'draining in-flight requests, then exiting');
    void svc
      .close(settings.drainSeconds * 1000)
      .then(() => logLastLine(logger, settings.logLevel, { signal, ms: Math.round(performance.now() - startedAt) }, 'oingate stopped'))
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'error while stopping');
          // Flushed before the exit, like the last line of a clean stop.
          logger.flush(() => process.exit(1));
        },
      );
  };
  // Registered before start-up, which can take seconds with the store down:
  // a SIGTERM then still ends in an orderly exit 0.
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = signal;
    if (service) stop(service, signal);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  try {
    // The first load starts before the HTTP stack is imported (some 0.2 s):
    // a large file's thread parses it, or PostgreSQL reads, meanwhile.
    const source = withFirstLoadStarted(await createSource(settings, logger));
    const { startService } = await import('./service.ts');
    service = await startService(settings, { logger, source });
  } catch (error) {
    // Nothing may keep a half-started process alive.
    console.error(`oingate: ${(error as Error).message ?? String(error)}`);
    process.exit(1);
  }
  if (stopping) stop(service, stopping);
}

/** Removes the PostgreSQL store's secrets from a text; the identity when the store is not PostgreSQL. */
function storeScrubber(): (text: string) => string {
  const store = process.env['OINGATE_STORE'] ?? '';
  return /^postgres(ql)?:\/\//.test(store) ? passwordScrubber(store) : (text) => text;
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === 'help') {
    console.log(USAGE);
    if (command === undefined) process.exitCode = 2;
    return;
  }
  if (command === 'version' || command === '--version') {
    console.log(BUILD_VERSION);
    return;
  }
  // Whatever fails below, its message is shown without the store's password.
  const scrub = storeScrubber();
  try {
    const settings = loadSettings();
    switch (command) {
      case 'serve':
        return await serve(settings);
      case 'check':
        return await check(settings, rest[0]);
      case 'token':
        return await token(settings, rest);
      case 'tokens':
        return await tokens(settings, rest);
      case 'revoke':
        return await revoke(settings, rest);
      case 'migrate': {
        const { migrate } = await import('./store/postgres/migrate.ts');
        const { applied } = await migrate(postgresUrl(settings, 'migrate'), SQL_DIR);
        console.log(applied.length ? `applied ${applied.join(', ')}` : 'schema is up to date');
        return;
      }
      case 'import': {
        const file = rest[0];
        if (!file) throw new CliError('import needs a FILE', 2);
        const url = postgresUrl(settings, 'import');
        const document = await readWhitelistFile(file).catch((error: Error) => {
          throw new CliError(error.message);
        });
        const snapshot = await validated(document, settings, file);
        const { importDocument } = await import('./store/postgres/migrate.ts');
        await importDocument(url, document as WhitelistDocument);
        console.log(`imported ${snapshot.tenants.size} tenant(s) from ${file}, version ${snapshot.version}`);
        return;
      }
      default:
        throw new CliError(`unknown command "${command}"\n${USAGE}`, 2);
    }
  } catch (error) {
    if (error instanceof SettingsError) {
      console.error(`oingate: ${scrub(error.message)}`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof CliError) {
      console.error(`oingate: ${scrub(error.message)}`);
      process.exitCode = error.exitCode;
      return;
    }
    console.error(`oingate: ${scrub((error as Error).message ?? String(error))}`);
    process.exitCode = 1;
  }
}

await main(process.argv.slice(2));
