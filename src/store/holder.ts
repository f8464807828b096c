import type { Snapshot } from '../model/snapshot.ts';
import { describeIssues, refusalCause, type RefusalCause, type SourceStatus, type WhitelistSource } from './source.ts';

export type ReloadOutcome =
  | { readonly ok: true; readonly changed: boolean; readonly snapshot: Snapshot }
  | { readonly ok: false; readonly error: string };

export interface HolderEvents {
  /** Every successful load, whether or not it changed the whitelist. */
  accepted?(snapshot: Snapshot): void;
  /** A load that changed the enforced whitelist. */
  loaded?(snapshot: Snapshot, previous: Snapshot | undefined): void;
  refused?(error: string, cause: RefusalCause): void;
  /** A source with a connection (PostgreSQL) connected, lost it, or failed to connect. */
  connection?(status: SourceStatus): void;
  /** An observer above threw; the reload itself stands. */
  observerFailed?(error: unknown): void;
}

export interface Readiness {
  readonly ready: boolean;
  readonly store: string;
  readonly version: string | null;
  readonly tenants: number;
  readonly loadedAt: string | null;
  readonly lastError: string | null;
  /** When lastError was set (ISO-8601); null with it. */
  readonly lastErrorAt: string | null;
  /** PostgreSQL only: whether the listening connection is up now. */
  readonly storeConnected?: boolean;
  /** With OINGATE_RATE_LIMIT_REDIS: the shared rate-limit store (degraded is not "not ready": decisions go on). */
  readonly rateLimit?: { readonly store: string; readonly degraded: boolean; readonly lastError: string | null };
  /** When TLS or client certificates are on (contract §9). */
  readonly tls?: TlsReadiness;
}

/** The /readyz `tls` member; certificateNotAfter is null when oingate does not terminate TLS itself. */
export interface TlsReadiness {
  readonly certificateNotAfter: string | null;
  readonly clientCas: number | null;
  readonly crlNextUpdate: string | null;
  readonly lastError: string | null;
}

/** A part of /readyz that another component owns; undefined adds nothing. */
export type ReadinessPart = () => Partial<Omit<Readiness, 'ready'>> | undefined;

/**
 * Holds the one enforced snapshot. Every reload, whatever triggered it, goes
 * through here: read, validate and build completely, then swap one reference.
 * On any failure the last good snapshot stays. Reloads are serialised, and a
 * burst of triggers collapses into at most one queued reload, so an older
 * read can never replace a newer one.
 */
export class SnapshotHolder {
  #current: Snapshot | undefined;
  #lastError: string | null = null;
  #lastErrorAt: Date | null = null;
  #running: Promise<ReloadOutcome> | undefined;
  #queued: Promise<ReloadOutcome> | undefined;
  #closed = false;
  /** The store's revision read just before the load that built #current. */
  #acceptedRevision: string | undefined;
  readonly #parts: ReadinessPart[] = [];

  constructor(
    readonly source: WhitelistSource,
    private readonly build: (document: unknown) => Promise<Snapshot>,
    private readonly events: HolderEvents = {},
  ) {}

  get current(): Snapshot | undefined {
    return this.#current;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /** Loads once, then follows the source's change hints. */
  async start(): Promise<ReloadOutcome> {
    const first = await this.reload();
    await this.source.watch(
      () => {
        void this.reload();
      },
      (status) => {
        // A store we cannot stay connected to is an error now, not at the
        // next resync; the next good load clears it.
        if (!status.connected && status.error !== undefined) this.#fail(status.error);
        this.#notify(() => this.events.connection?.(status));
      },
    );
    return first;
  }

  #fail(message: string): void {
    this.#lastError = message;
    this.#lastErrorAt = new Date();
  }

  #succeed(): void {
    this.#lastError = null;
    this.#lastErrorAt = null;
  }

  reload(): Promise<ReloadOutcome> {
    if (this.#running === undefined) {
      this.#running = this.#run();
      return this.#running;
    }
    // One reload runs; one more may wait, and it reads the store after every
    // trigger so far, so further triggers can share it.
    const next = (): Promise<ReloadOutcome> => {
      this.#queued = undefined;
      this.#running = this.#run();
      return this.#running;
    };
    // Chained on settlement, not success: nothing may wedge the queue.
    this.#queued ??= this.#running.then(next, next);
    return this.#queued;
  }

  async #run(): Promise<ReloadOutcome> {
    try {
      if (this.#closed) return { ok: false, error: 'closed' };
      // Read before the load: if the store changes in between, the next
      // check sees another revision and loads again. Never the other way.
      const revision = await this.source.revision?.().catch(() => undefined);
      const current = this.#current;
      if (current !== undefined && revision !== undefined && revision === this.#acceptedRevision) {
        this.#succeed(); // the store holds exactly what is enforced
        this.#notify(() => this.events.accepted?.(current));
        return { ok: true, changed: false, snapshot: current };
      }
      let snapshot: Snapshot;
      let document: unknown;
      try {
        document = await this.source.load();
        snapshot = await this.build(document);
      } catch (caught) {
        // Issues are placed the way the store's user knows its rows.
        const error = describeIssues(this.source, document, caught);
        const message = error instanceof Error ? error.message : String(error);
        const cause = refusalCause(error);
        this.#fail(message);
        this.#notify(() => this.events.refused?.(message, cause));
        return { ok: false, error: message };
      }
      const previous = this.#current;
      this.#succeed();
      this.#acceptedRevision = revision;
      if (previous !== undefined && previous.version === snapshot.version) {
        this.#notify(() => this.events.accepted?.(previous));
        return { ok: true, changed: false, snapshot: previous };
      }
      this.#current = snapshot;
      this.#notify(() => this.events.accepted?.(snapshot));
      this.#notify(() => this.events.loaded?.(snapshot, previous));
      return { ok: true, changed: true, snapshot };
    } finally {
      if (this.#queued === undefined) this.#running = undefined;
    }
  }

  /**
   * Runs one observer. An observer that throws (a logger, a metric) must not
   * turn a good reload into a rejected promise: the queue chains on it, and
   * a rejection there would wedge every later reload.
   */
  #notify(observer: () => void): void {
    try {
      observer();
    } catch (error) {
      try {
        this.events.observerFailed?.(error);
      } catch {
        // Nothing is left to tell it to; the reload stands.
      }
    }
  }

  /** Adds another component's fields to every readiness() (e.g. the rate limiter's store). */
  addReadiness(part: ReadinessPart): void {
    this.#parts.push(part);
  }

  #tls: (() => TlsReadiness) | undefined;

  /** Adds `tls` to the readiness body, read each time it is asked for. */
  trackTls(status: () => TlsReadiness): void {
    this.#tls = status;
  }

  readiness(): Readiness {
    const current = this.#current;
    const tls = this.#tls?.();
    const base: Readiness = {
      ready: current !== undefined,
      store: this.source.description,
      version: current?.version ?? null,
      tenants: current?.tenants.size ?? 0,
      loadedAt: current?.loadedAt.toISOString() ?? null,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt?.toISOString() ?? null,
      ...(this.source.connected !== undefined ? { storeConnected: this.source.connected } : {}),
      ...(tls !== undefined ? { tls } : {}),
    };
    if (this.#parts.length === 0) return base;
    return Object.assign(base, ...this.#parts.map((part) => part() ?? {}));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.source.close();
  }
}
