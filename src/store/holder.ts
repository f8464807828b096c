import type { ChangeSet, Snapshot } from '../model/snapshot.ts';
import { describeIssues, refusalCause, type ChangeHint, type RefusalCause, type SourceStatus, type WhitelistSource } from './source.ts';

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
/** What the triggers since the last reload started ask for: everything, or these tenants. */
interface Pending {
  full: boolean;
  readonly oins: Set<string>;
}

// Past this many tenants named in one burst, one full read is cheaper than a long IN list.
const MAX_INCREMENTAL_OINS = 10_000;

/**
 * Holds the one enforced snapshot. Every reload, whatever triggered it, goes
 * through here: read, validate and build completely, then swap one reference.
 * On any failure the last good snapshot stays. Reloads are serialised, and a
 * burst of triggers collapses into at most one queued reload, so an older
 * read can never replace a newer one.
 *
 * A source whose hints name tenants (PostgreSQL) gets them re-read alone and
 * applied to the current snapshot; every other trigger (start, reconnect,
 * resync, an explicit reload, a hint without OINs) reads everything.
 */
export class SnapshotHolder {
  #current: Snapshot | undefined;
  #lastError: string | null = null;
  #lastErrorAt: Date | null = null;
  #running: Promise<ReloadOutcome> | undefined;
  #queued: Promise<ReloadOutcome> | undefined;
  #closed = false;
  /**
   * The store's revision read just before the load that built #current, or
   * (a first load) of the state that load read, recorded once it came.
   */
  #acceptedRevision: string | undefined;
  /** How many loads were accepted: a revision that comes late belongs to the last only. */
  #accepted = 0;
  readonly #parts: ReadinessPart[] = [];
  #pending: Pending = { full: true, oins: new Set() };

  /**
   * `build` gets the snapshot now enforced, to take over unchanged tenants;
   * `apply` (with a source that has loadTenants) applies a change set.
   */
  constructor(
    readonly source: WhitelistSource,
    private readonly build: (document: unknown, previous: Snapshot | undefined) => Promise<Snapshot>,
    private readonly events: HolderEvents = {},
    private readonly apply?: (current: Snapshot, changes: ChangeSet) => Promise<Snapshot>,
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
      (hint) => {
        void this.#trigger(hint);
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

  /** Reads everything (an explicit reload, and the start). */
  reload(): Promise<ReloadOutcome> {
    return this.#trigger(undefined);
  }

  #trigger(hint: ChangeHint | undefined): Promise<ReloadOutcome> {
    const pending = this.#pending;
    if (hint === undefined || hint.oins.length === 0) pending.full = true;
    else if (!pending.full) for (const oin of hint.oins) pending.oins.add(oin);
    if (pending.oins.size > MAX_INCREMENTAL_OINS) pending.full = true;
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
      const pending = this.#pending;
      this.#pending = { full: false, oins: new Set() };
      const current = this.#current;
      if (!pending.full && current !== undefined && this.apply && this.source.loadTenants) {
        return await this.#runIncremental(current, [...pending.oins], this.apply, this.source.loadTenants.bind(this.source));
      }
      // A first load has no revision to compare with: the source may give it
      // with the load, computed meanwhile (at 100k tenants the digest takes
      // PostgreSQL some 0.4 s), so the first snapshot need not wait for it.
      if (current === undefined && this.source.loadWithRevision) return await this.#runFull(undefined, this.source.loadWithRevision.bind(this.source));
      // Read before the load: if the store changes in between, the next
      // check sees another revision and loads again. Never the other way.
      const revision = await this.source.revision?.().catch(() => undefined);
      if (current !== undefined && revision !== undefined && revision === this.#acceptedRevision) {
        this.#succeed(); // the store holds exactly what is enforced
        this.#notify(() => this.events.accepted?.(current));
        return { ok: true, changed: false, snapshot: current };
      }
      return await this.#runFull(current, async () => ({ document: await this.source.load(), revision: Promise.resolve(revision) }));
    } finally {
      if (this.#queued === undefined) this.#running = undefined;
    }
  }

  /**
   * Re-reads the named tenants and applies them. The revision is not read:
   * it digests the whole store, the cost this path avoids. The accepted one
   * is forgotten instead, so the next resync reads everything once.
   */
  async #runIncremental(
    current: Snapshot,
    oins: readonly string[],
    apply: (current: Snapshot, changes: ChangeSet) => Promise<Snapshot>,
    loadTenants: (oins: readonly string[]) => Promise<ChangeSet>,
  ): Promise<ReloadOutcome> {
    let snapshot: Snapshot;
    let changes: ChangeSet | undefined;
    try {
      changes = await loadTenants(oins);
      snapshot = await apply(current, changes);
    } catch (caught) {
      // Refused as a whole; these tenants are read again with the next
      // change, so a later change elsewhere cannot clear the error while the
      // bad rows are still there, just as a full read could not.
      if (refusalCause(caught) === 'invalid') for (const oin of oins) this.#pending.oins.add(oin);
      else this.#pending.full = true;
      return this.#refuse(changes ? { tenants: changes.upserts, revokedTokens: changes.revokedTokens } : undefined, caught);
    }
    this.#acceptedRevision = undefined;
    return this.#accept(snapshot);
  }

  /**
   * Reads the whole store and builds it: the revision (of a state no newer
   * than the one read) is recorded when it comes, unless another load was
   * accepted in between.
   */
  async #runFull(
    current: Snapshot | undefined,
    load: () => Promise<{ readonly document: unknown; readonly revision: Promise<string | undefined> }>,
  ): Promise<ReloadOutcome> {
    let snapshot: Snapshot;
    let document: unknown;
    let revision: Promise<string | undefined>;
    try {
      ({ document, revision } = await load());
      snapshot = await this.build(document, current);
    } catch (caught) {
      // The store is bad somewhere (or unreadable): until a full read
      // succeeds, no partial read may clear the error or build on it.
      this.#pending.full = true;
      return this.#refuse(document, caught);
    }
    this.#acceptedRevision = undefined;
    const outcome = this.#accept(snapshot);
    const accepted = this.#accepted;
    void revision.then((value) => {
      if (this.#accepted === accepted) this.#acceptedRevision = value;
    });
    return outcome;
  }

  #refuse(document: unknown, caught: unknown): ReloadOutcome {
    // Issues are placed the way the store's user knows its rows.
    const error = describeIssues(this.source, document, caught);
    const message = error instanceof Error ? error.message : String(error);
    const cause = refusalCause(error);
    this.#fail(message);
    this.#notify(() => this.events.refused?.(message, cause));
    return { ok: false, error: message };
  }

  #accept(snapshot: Snapshot): ReloadOutcome {
    this.#accepted++;
    const previous = this.#current;
    this.#succeed();
    if (previous !== undefined && previous.version === snapshot.version) {
      this.#notify(() => this.events.accepted?.(previous));
      return { ok: true, changed: false, snapshot: previous };
    }
    this.#current = snapshot;
    this.#notify(() => this.events.accepted?.(snapshot));
    this.#notify(() => this.events.loaded?.(snapshot, previous));
    return { ok: true, changed: true, snapshot };
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

  readiness(): Readiness {
    const current = this.#current;
    const base: Readiness = {
      ready: current !== undefined,
      store: this.source.description,
      version: current?.version ?? null,
      tenants: current?.tenants.size ?? 0,
      loadedAt: current?.loadedAt.toISOString() ?? null,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt?.toISOString() ?? null,
      ...(this.source.connected !== undefined ? { storeConnected: this.source.connected } : {}),
    };
    if (this.#parts.length === 0) return base;
    return Object.assign(base, ...this.#parts.map((part) => part() ?? {}));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.source.close();
  }
}
