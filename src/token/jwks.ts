import { createHash } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import type { Agent, request as undiciRequest } from 'undici';
import type { Tenant } from '../model/snapshot.ts';
import { createLogger, type Logger } from '../observe/logger.ts';
import { keySet, type KeySet, type TenantKey } from './key.ts';
import { JwksError, readJwks } from './jwk.ts';
import { isAllowedJwksUrl } from './jwks-url.ts';

/**
 * Per-tenant JSON Web Key Sets: fetched in the background, cached, and
 * merged with the tenant's static keys into one KeySet per fetch, so the
 * request path only ever reads a prebuilt KeySet from a map. The request
 * path fetches only when a token names a kid the tenant does not have, at
 * most once per `refetchIntervalMs` per tenant, and every request waiting
 * meanwhile shares that one fetch.
 *
 * Each tenant has its own entry, its own fetches and its own KeyObjects,
 * even when two tenants publish the same set: a key is only ever offered for
 * the tenant whose entry fetched it.
 */

export type JwksFetchOutcome = 'ok' | 'error' | 'refused';

/**
 * Background fetch slots, over all tenants. A fetch holds its slot until it
 * ends or for SLOT_HOLD_MS, whichever comes first: a healthy endpoint answers
 * within that, so tenants of one identity provider reach it a few at a time,
 * while one that hangs gives its slot up and goes on waiting outside the
 * slots, holding up no other tenant.
 */
export const BACKGROUND_FETCHES = 8;

/** Longest a background fetch holds its slot, in ms. */
export const SLOT_HOLD_MS = 200;

/**
 * Fetches open at once over all tenants, background ones (in a slot or past
 * their hold) and unknown-kid refetches alike: the bound on sockets. With
 * the defaults, background fetches start at most BACKGROUND_FETCHES per
 * SLOT_HOLD_MS and end within the 5 s timeout, so about 200 of them can be
 * open at most; this bound holds for other settings too.
 */
export const MAX_OPEN_FETCHES = 256;

export interface JwksCacheOptions {
  /** Refresh period after a successful fetch, in seconds. */
  readonly ttlSeconds: number;
  /** How long past its refresh time a set stays in use while its endpoint fails, in seconds. */
  readonly maxStaleSeconds: number;
  /** Smallest interval between two unknown-kid refetches of one tenant; default 30 s. */
  readonly refetchIntervalMs?: number;
  /** Connect, headers and whole-fetch timeout; default 5 s. */
  readonly timeoutMs?: number;
  /** Largest accepted set, in bytes; default 256 KiB. */
  readonly maxBytes?: number;
  /** Retry delay after a failed fetch (never later than the TTL); default 30 s. */
  readonly retryMs?: number;
  /** Refreshes come up to this fraction of the TTL early, spreading tenants of one IdP; default 0.1. */
  readonly jitterRatio?: number;
  /** One more CA certificate (PEM) to trust besides the system ones, e.g. a test CA. */
  readonly ca?: string;
  readonly now?: () => number;
  readonly logger?: Logger;
  /** Called once per finished fetch, for metrics. */
  readonly onFetch?: (oin: string, outcome: JwksFetchOutcome) => void;
  /** Background fetch slots; default BACKGROUND_FETCHES. */
  readonly slots?: number;
  /** Longest a background fetch holds its slot, in ms; default SLOT_HOLD_MS. */
  readonly slotHoldMs?: number;
  /** Fetches open at once, background and unknown-kid alike; default MAX_OPEN_FETCHES. */
  readonly maxOpenFetches?: number;
}

export interface JwksStatus {
  readonly oin: string;
  readonly jwksUri: string;
  /** Epoch ms of the last successful fetch, or undefined when none succeeded yet. */
  readonly fetchedAt: number | undefined;
  /** Seconds since the last successful fetch, or null when none succeeded yet. */
  readonly ageSeconds: number | null;
  /** Whether keysFor() answers a KeySet (fetched, and not too stale). */
  readonly usable: boolean;
  readonly keys: number;
  /** The last fetch's failure, null after a success. */
  readonly lastError: string | null;
}

interface Entry {
  readonly oin: string;
  readonly uri: string;
  /** The tenant of the latest snapshot: its static kids are checked against each fetched set. */
  tenant: Tenant;
  /** The last good set's keys, undefined until a fetch succeeds. */
  keys: readonly TenantKey[] | undefined;
  fingerprint: string | undefined;
  fetchedAt: number | undefined;
  lastError: string | null;
  /** Static + JWKS keys, built once per (fetched set, tenant object). */
  merged: WeakMap<Tenant, KeySet>;
  inflight: Promise<boolean> | undefined;
  abort: AbortController | undefined;
  lastUnknownKidFetch: number | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Waiting for a background slot. */
  queued: boolean;
  stopped: boolean;
}

/** A failed fetch: `error` when the endpoint failed, `refused` when its answer was unacceptable. */
class FetchFailure extends Error {
  constructor(
    readonly outcome: 'error' | 'refused',
    message: string,
  ) {
    super(message);
    this.name = 'FetchFailure';
  }
}

function positiveInteger(name: string, value: number): number {
  if (!(Number.isSafeInteger(value) && value > 0)) throw new RangeError(`JwksCache: ${name} must be a positive integer`);
  return value;
}

/** Drops a response body unread; the abort this causes is expected, not an error. */
function discard(body: { on(event: 'error', listener: () => void): unknown; destroy(): unknown }): void {
  body.on('error', () => {});
  body.destroy();
}

function describe(error: unknown): string {
  if (error instanceof FetchFailure || error instanceof JwksError) return error.message;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    const cause = (error as { cause?: unknown }).cause;
    const causeCode = cause instanceof Error ? (cause as NodeJS.ErrnoException).code : undefined;
    const label = code ?? causeCode;
    return label && !error.message.includes(label) ? `${label}: ${error.message}` : error.message;
  }
  return String(error);
}

/** Identifies a set by what verification uses: kid, alg and key bytes, in order. */
function fingerprintOf(keys: readonly TenantKey[]): string {
  const hash = createHash('sha256');
  for (const key of keys) {
    hash.update(JSON.stringify([key.kid, key.alg]));
    hash.update(key.key.export({ type: 'spki', format: 'der' }));
  }
  return hash.digest('base64');
}

export class JwksCache {
  readonly #entries = new Map<string, Entry>();
  readonly #agentOptions: Agent.Options;
  /**
   * undici (~130 ms to import) and the agent: made by {@link prepare} while
   * the gate starts, or else by the first fetch; a missing undici fails that
   * fetch, logged as the set being unavailable.
   */
  #http: Promise<{ readonly agent: Agent; readonly request: typeof undiciRequest }> | undefined;
  readonly #ttlMs: number;
  readonly #maxStaleMs: number;
  readonly #refetchIntervalMs: number;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #retryMs: number;
  readonly #jitterRatio: number;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #slots: number;
  readonly #slotHoldMs: number;
  readonly #maxOpen: number;
  /** Background fetches holding a slot. */
  #slotted = 0;
  /** Fetches open: background ones, in a slot or past their hold, and unknown-kid refetches. */
  #open = 0;
  /**
   * Fetches waiting for a slot, by priority: sets never fetched, then due
   * refreshes of sets whose last fetch succeeded, then retries after a
   * failure, so endpoints that fail go after those that answer.
   */
  readonly #waiting: readonly [Set<Entry>, Set<Entry>, Set<Entry>] = [new Set(), new Set(), new Set()];
  readonly #onFetch: ((oin: string, outcome: JwksFetchOutcome) => void) | undefined;
  #closed = false;

  #client(): Promise<{ readonly agent: Agent; readonly request: typeof undiciRequest }> {
    this.#http ??= import('undici').then((undici) => ({ agent: new undici.Agent(this.#agentOptions), request: undici.request }));
    return this.#http;
  }

  /**
   * Imports undici now, before any fetch: called while the first whitelist
   * loads, so that a tenant given a jwksUri later never makes the loop that
   * serves requests wait for an import. Rejects when undici cannot load.
   */
  async prepare(): Promise<void> {
    await this.#client();
  }

  constructor(options: JwksCacheOptions) {
    if (!(options.ttlSeconds > 0)) throw new RangeError('JwksCache: ttlSeconds must be > 0');
    if (!(options.maxStaleSeconds >= 0)) throw new RangeError('JwksCache: maxStaleSeconds must be >= 0');
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#maxStaleMs = options.maxStaleSeconds * 1000;
    this.#refetchIntervalMs = options.refetchIntervalMs ?? 30_000;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#maxBytes = options.maxBytes ?? 256 * 1024;
    this.#retryMs = options.retryMs ?? 30_000;
    this.#jitterRatio = Math.min(Math.max(options.jitterRatio ?? 0.1, 0), 0.5);
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger ?? createLogger('silent');
    this.#onFetch = options.onFetch;
    this.#slots = positiveInteger('slots', options.slots ?? BACKGROUND_FETCHES);
    this.#slotHoldMs = options.slotHoldMs ?? SLOT_HOLD_MS;
    if (!(this.#slotHoldMs > 0)) throw new RangeError('JwksCache: slotHoldMs must be > 0');
    this.#maxOpen = positiveInteger('maxOpenFetches', options.maxOpenFetches ?? MAX_OPEN_FETCHES);
    this.#agentOptions = {
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
      connect: {
        timeout: this.#timeoutMs,
        ...(options.ca !== undefined ? { ca: [...rootCertificates, options.ca] } : {}),
      },
    };
  }

  /**
   * Follows a new snapshot: fetches for tenants whose (oin, jwksUri) is new,
   * keeps the cached set of those whose pair is unchanged, drops the rest.
   */
  sync(tenants: Iterable<Tenant>): void {
    if (this.#closed) return;
    const seen = new Set<string>();
    for (const tenant of tenants) {
      if (tenant.jwksUri === undefined) continue;
      seen.add(tenant.oin);
      this.#follow(tenant, tenant.jwksUri);
    }
    for (const [oin, entry] of this.#entries) {
      if (!seen.has(oin)) {
        this.#stop(entry);
        this.#entries.delete(oin);
      }
    }
  }

  /**
   * Follows a change of some tenants only (the others are as they were):
   * `changed` as they are now, `removed` by OIN. The same rules as sync.
   */
  update(changed: Iterable<Tenant>, removed: Iterable<string>): void {
    if (this.#closed) return;
    for (const oin of removed) this.#drop(oin);
    for (const tenant of changed) {
      if (tenant.jwksUri === undefined) this.#drop(tenant.oin);
      else this.#follow(tenant, tenant.jwksUri);
    }
  }

  #drop(oin: string): void {
    const entry = this.#entries.get(oin);
    if (entry === undefined) return;
    this.#stop(entry);
    this.#entries.delete(oin);
  }

  /** Keeps the cached set of a tenant whose (oin, jwksUri) is unchanged; otherwise starts a new entry. */
  #follow(tenant: Tenant, uri: string): void {
    const existing = this.#entries.get(tenant.oin);
    if (existing !== undefined && existing.uri === uri) {
      existing.tenant = tenant;
      return;
    }
    if (existing !== undefined) this.#stop(existing);
    const entry: Entry = {
      oin: tenant.oin,
      uri,
      tenant,
      keys: undefined,
      fingerprint: undefined,
      fetchedAt: undefined,
      lastError: null,
      merged: new WeakMap(),
      inflight: undefined,
      abort: undefined,
      lastUnknownKidFetch: undefined,
      timer: undefined,
      queued: false,
      stopped: false,
    };
    this.#entries.set(tenant.oin, entry);
    this.#background(entry);
  }

  /**
   * The keys a request for `tenant` is verified with: its static keys, plus
   * its JWKS keys when it names a jwksUri. Undefined when that set was never
   * fetched or is too stale (the caller answers 503). Never fetches.
   */
  keysFor(tenant: Tenant): KeySet | undefined {
    if (tenant.jwksUri === undefined) return tenant.keys;
    const entry = this.#entries.get(tenant.oin);
    if (entry === undefined || entry.uri !== tenant.jwksUri || !this.#usable(entry)) return undefined;
    let merged = entry.merged.get(tenant);
    if (merged === undefined) {
      merged = this.#merge(entry, tenant);
      entry.merged.set(tenant, merged);
    }
    return merged;
  }

  /**
   * A token named a kid `tenant` does not have: refetch its set, at most once
   * per refetch interval; callers meanwhile share the fetch in flight.
   * Resolves true when the set changed (the decision is worth taking again).
   */
  refreshOnUnknownKid(tenant: Tenant): Promise<boolean> {
    if (tenant.jwksUri === undefined || this.#closed) return Promise.resolve(false);
    const entry = this.#entries.get(tenant.oin);
    if (entry === undefined || entry.uri !== tenant.jwksUri) return Promise.resolve(false);
    if (entry.inflight !== undefined) return entry.inflight;
    const now = this.#now();
    if (entry.lastUnknownKidFetch !== undefined && now - entry.lastUnknownKidFetch < this.#refetchIntervalMs) {
      return Promise.resolve(false);
    }
    // Counted in the same bound on open fetches as background ones; when it
    // is reached the request is decided with the keys at hand (the kid stays
    // unknown) and the interval is not spent, so the next one may fetch.
    if (this.#open >= this.#maxOpen) {
      this.#logger.warn({ oin: entry.oin, jwksUri: entry.uri, open: this.#open }, 'jwks refetch for an unknown kid skipped: too many fetches open');
      return Promise.resolve(false);
    }
    entry.lastUnknownKidFetch = now;
    this.#open++;
    const fetched = this.#refresh(entry);
    const done = (): void => {
      this.#open--;
      this.#startWaiting();
    };
    fetched.then(done, done);
    return fetched;
  }

  /** One line per tenant with a jwksUri, for metrics and operators. */
  status(): JwksStatus[] {
    const now = this.#now();
    return [...this.#entries.values()].map((entry) => ({
      oin: entry.oin,
      jwksUri: entry.uri,
      fetchedAt: entry.fetchedAt,
      ageSeconds: entry.fetchedAt === undefined ? null : Math.max(0, (now - entry.fetchedAt) / 1000),
      usable: this.#usable(entry),
      keys: entry.keys?.length ?? 0,
      lastError: entry.lastError,
    }));
  }

  /**
   * A refresh nobody awaits (start-up, a reload, the TTL timer). It starts at
   * once when a slot is free and fewer than maxOpenFetches are open, else it
   * waits its turn by priority (see #waiting). Whatever a refresh throws is
   * logged, never left unhandled (it would end the process). Unknown-kid
   * refetches, which a request waits for, do not queue here: there is at
   * most one per tenant at a time and one per refetch interval.
   */
  #background(entry: Entry): void {
    if (entry.stopped || this.#closed || entry.queued) return;
    if (this.#slotted >= this.#slots || this.#open >= this.#maxOpen) {
      entry.queued = true;
      const priority = entry.lastError !== null ? 2 : entry.fetchedAt === undefined ? 0 : 1;
      this.#waiting[priority].add(entry);
      return;
    }
    this.#slotted++;
    this.#open++;
    let holding = true;
    const release = (): void => {
      if (!holding) return;
      holding = false;
      this.#slotted--;
      this.#startWaiting();
    };
    // The slot goes back after the hold even while the fetch goes on (up to
    // its timeout): an endpoint that hangs keeps a socket, not a slot.
    const hold = setTimeout(release, this.#slotHoldMs);
    hold.unref();
    this.#refresh(entry)
      .catch((error: unknown) => {
        this.#logger.error({ oin: entry.oin, jwksUri: entry.uri, err: error }, 'jwks refresh failed unexpectedly');
      })
      .finally(() => {
        clearTimeout(hold);
        this.#open--;
        if (holding) {
          holding = false;
          this.#slotted--;
        }
        this.#startWaiting();
      });
  }

  /** Starts waiting fetches, highest priority first, while slots and the open bound allow. */
  #startWaiting(): void {
    for (const queue of this.#waiting) {
      for (const next of queue) {
        if (this.#slotted >= this.#slots || this.#open >= this.#maxOpen) return;
        queue.delete(next);
        next.queued = false;
        this.#background(next);
      }
    }
  }

  /** Stops every timer and fetch; keysFor() answers undefined for JWKS tenants afterwards. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#entries.values()) this.#stop(entry);
    this.#entries.clear();
    for (const queue of this.#waiting) queue.clear();
    await this.#http?.then(
      ({ agent }) => agent.destroy(),
      () => undefined,
    );
  }

  /**
   * A set is due for refresh `ttl` after its fetch, and that refresh has
   * `timeoutMs` to finish; from then on it is stale, and stays in use for
   * `maxStale` more while the endpoint fails.
   */
  #usable(entry: Entry): boolean {
    if (entry.keys === undefined || entry.fetchedAt === undefined) return false;
    return this.#now() - entry.fetchedAt <= this.#ttlMs + this.#timeoutMs + this.#maxStaleMs;
  }

  #merge(entry: Entry, tenant: Tenant): KeySet {
    const jwksKeys = entry.keys ?? [];
    const shadowed = jwksKeys.filter((key) => tenant.keys.byKid.has(key.kid)).map((key) => key.kid);
    if (shadowed.length === 0) return keySet(Object.freeze([...tenant.keys.list, ...jwksKeys]));
    // Only a whitelist change after the fetch gets here (a fetched set that
    // collides is refused): the operator's static key wins for that kid.
    this.#logger.error(
      { oin: entry.oin, jwksUri: entry.uri, kids: shadowed },
      'jwks kid also names a static key of the tenant; the static key is used for it',
    );
    return keySet(Object.freeze([...tenant.keys.list, ...jwksKeys.filter((key) => !tenant.keys.byKid.has(key.kid))]));
  }

  #stop(entry: Entry): void {
    entry.stopped = true;
    if (entry.queued) for (const queue of this.#waiting) queue.delete(entry);
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.abort?.abort();
  }

  #refresh(entry: Entry): Promise<boolean> {
    if (entry.inflight !== undefined) return entry.inflight;
    const inflight = this.#fetchEntry(entry).finally(() => {
      entry.inflight = undefined;
    });
    entry.inflight = inflight;
    return inflight;
  }

  async #fetchEntry(entry: Entry): Promise<boolean> {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    const abort = new AbortController();
    entry.abort = abort;
    let ok = false;
    let changed = false;
    try {
      const bytes = await this.#download(entry.uri, abort.signal);
      if (entry.stopped) return false;
      const parsed = (() => {
        try {
          return readJwks(bytes);
        } catch (error) {
          if (error instanceof JwksError) throw new FetchFailure('refused', error.message);
          throw error;
        }
      })();
      const collisions = parsed.keys.filter((key) => entry.tenant.keys.byKid.has(key.kid)).map((key) => key.kid);
      if (collisions.length > 0) {
        throw new FetchFailure(
          'refused',
          `the key set lists kid ${collisions.map((kid) => JSON.stringify(kid)).join(', ')}, already a static key of this tenant`,
        );
      }
      const fingerprint = fingerprintOf(parsed.keys);
      changed = fingerprint !== entry.fingerprint;
      if (changed) {
        entry.keys = parsed.keys;
        entry.fingerprint = fingerprint;
        entry.merged = new WeakMap();
      }
      entry.fetchedAt = this.#now();
      entry.lastError = null;
      ok = true;
      this.#onFetch?.(entry.oin, 'ok');
      const facts = {
        oin: entry.oin,
        jwksUri: entry.uri,
        kids: parsed.keys.map((key) => key.kid),
        ...(parsed.skipped.length > 0 ? { skipped: parsed.skipped } : {}),
      };
      if (changed) this.#logger.info(facts, 'jwks set loaded');
      else this.#logger.debug(facts, 'jwks set unchanged');
      return changed;
    } catch (error) {
      if (entry.stopped) return false;
      const outcome = error instanceof FetchFailure ? error.outcome : 'error';
      const message = describe(error);
      entry.lastError = message;
      this.#onFetch?.(entry.oin, outcome);
      const ageSeconds = entry.fetchedAt === undefined ? null : Math.round((this.#now() - entry.fetchedAt) / 1000);
      const facts = { oin: entry.oin, jwksUri: entry.uri, outcome, error: message, ageSeconds };
      if (this.#usable(entry)) {
        this.#logger.warn(facts, 'jwks set is stale; the last good set stays in use');
      } else {
        this.#logger.error(facts, 'jwks set unavailable; the tenant is answered 503');
      }
      return false;
    } finally {
      if (entry.abort === abort) entry.abort = undefined;
      if (!entry.stopped && !this.#closed) this.#schedule(entry, ok);
    }
  }

  #schedule(entry: Entry, ok: boolean): void {
    clearTimeout(entry.timer);
    const delay = ok
      ? this.#ttlMs * (1 - this.#jitterRatio * Math.random())
      : Math.min(this.#ttlMs, this.#retryMs);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#background(entry);
    }, delay);
    entry.timer.unref();
  }

  async #download(uri: string, signal: AbortSignal): Promise<Buffer> {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new FetchFailure('error', 'jwksUri is not a URL');
    }
    if (!isAllowedJwksUrl(url)) {
      throw new FetchFailure('error', 'jwksUri must use https (plain http only to a loopback address)');
    }
    // Loaded before the timeout starts: the import is not the endpoint's time.
    const { agent, request } = await this.#client();
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let response: Awaited<ReturnType<typeof request>>;
    try {
      response = await request(url, {
        method: 'GET',
        dispatcher: agent,
        signal: AbortSignal.any([signal, timeout]),
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
    } catch (error) {
      if (timeout.aborted) throw new FetchFailure('error', `no answer within ${this.#timeoutMs} ms`);
      throw error;
    }
    const { statusCode, headers, body } = response;
    if (statusCode !== 200) {
      discard(body);
      throw new FetchFailure(
        'error',
        statusCode >= 300 && statusCode < 400 ? `redirect (status ${statusCode}) refused` : `status ${statusCode}`,
      );
    }
    const declared = headers['content-length'];
    if (typeof declared === 'string' && Number(declared) > this.#maxBytes) {
      discard(body);
      throw new FetchFailure('refused', `the key set is ${declared} bytes, at most ${this.#maxBytes} are accepted`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of body) {
        const buffer = chunk as Buffer;
        total += buffer.length;
        if (total > this.#maxBytes) {
          discard(body);
          throw new FetchFailure('refused', `the key set is over ${this.#maxBytes} bytes`);
        }
        chunks.push(buffer);
      }
    } catch (error) {
      if (error instanceof FetchFailure) throw error;
      if (timeout.aborted) throw new FetchFailure('error', `no complete answer within ${this.#timeoutMs} ms`);
      throw error;
    }
    return Buffer.concat(chunks);
  }
}
