import { WhitelistError } from '../model/errors.ts';
import type { ChangeSet } from '../model/snapshot.ts';

/** What a source that keeps a connection tells about it. */
export interface SourceStatus {
  readonly connected: boolean;
  /** Why a connection attempt failed (safe to show: no secret). */
  readonly error?: string;
}

/**
 * What a source knows about a change: the OINs of the tenants it touched.
 * No hint (undefined) means anything may have changed: re-read everything.
 */
export interface ChangeHint {
  readonly oins: readonly string[];
}

/**
 * Why a load was refused: `invalid` (the store was read but its content is
 * not a valid whitelist) or `unreachable` (it could not be read at all).
 */
export type RefusalCause = 'invalid' | 'unreachable';

/**
 * A place whitelists come from. A source only reads and signals; validation
 * and the swap of the enforced snapshot belong to the SnapshotHolder, so both
 * stores share one reload path.
 */
export interface WhitelistSource {
  /** Names the store for /readyz and logs. Never contains a password. */
  readonly description: string;
  /**
   * Reads the whole whitelist as one consistent document (the JSON file's
   * shape, unvalidated). Rejects when the store cannot be read.
   */
  load(): Promise<unknown>;
  /**
   * Optional: a digest of the store's whole content, cheaper than a load. The
   * holder skips load and build when it equals the digest read before the
   * load it last accepted, so periodic resyncs and repeated triggers of an
   * unchanged store cost almost nothing. Rejects or gives undefined when it
   * cannot tell; the holder then loads.
   */
  revision?(): Promise<string | undefined>;
  /**
   * Optional: a load, and the revision of a state no newer than the one
   * loaded, computed meanwhile (it never rejects; undefined when it cannot
   * tell). For a first load, which has no revision to compare with: it need
   * not wait for the digest before it reads.
   */
  loadWithRevision?(): Promise<{ readonly document: unknown; readonly revision: Promise<string | undefined> }>;
  /**
   * Starts watching, once; `changed` is a hint that the store may differ
   * from the last load (the holder re-reads, coalescing bursts). A source
   * that reconnects calls `changed` after every reconnect, since changes made
   * meanwhile were not signalled.
   */
  watch(changed: (hint?: ChangeHint) => void, status?: (status: SourceStatus) => void): Promise<void>;
  /**
   * Optional, for sources whose hints name tenants: reads exactly these
   * tenants, all their rows, as one consistent read. Tenants that exist come
   * back as upserts (the document shape load() gives each tenant), the others
   * as removals. Rejects when the store cannot be read.
   */
  loadTenants?(oins: readonly string[]): Promise<ChangeSet>;
  /**
   * Optional, for stores with a connection (PostgreSQL): whether it is up
   * now. A source without one leaves it undefined.
   */
  readonly connected?: boolean;
  /**
   * Optional: rewrites a validation issue's place in `document` (the one
   * load() gave) into words the store's user knows, e.g. the row's keys
   * instead of a list position. Without it, places stay as they are.
   */
  describePath?(document: unknown, path: string): string;
  close(): Promise<void>;
}

/**
 * `source` with its first load (loadWithRevision's) already under way, for
 * the holder's first load to take: `oingate serve` starts it before it
 * imports its HTTP stack, so that a large file is parsed in its thread (or
 * PostgreSQL reads) meanwhile. Later loads start when asked, as before.
 */
export function withFirstLoadStarted<S extends WhitelistSource>(source: S): S {
  if (!source.loadWithRevision) return source;
  const load = source.loadWithRevision.bind(source);
  let started: ReturnType<typeof load> | undefined = load();
  // Handled by the holder when it takes it; a start that fails before then must not go unhandled.
  started.catch(() => undefined);
  source.loadWithRevision = () => {
    const first = started;
    started = undefined;
    return first ?? load();
  };
  return source;
}

/** An error a source throws with its cause stated (a file that is read but is not JSON is `invalid`). */
export interface ClassifiedError extends Error {
  readonly refusal: RefusalCause;
}

/** `invalid` for a whitelist that was read but refused; `unreachable` for a store that could not be read. */
export function refusalCause(error: unknown): RefusalCause {
  if (error instanceof WhitelistError) return 'invalid';
  return (error as Partial<ClassifiedError> | null)?.refusal === 'invalid' ? 'invalid' : 'unreachable';
}

/**
 * `error` with its issues' places rewritten by the source's describePath
 * (rows by OIN and kid or CIDR); other errors, or a source without it, as they are.
 */
export function describeIssues(source: Pick<WhitelistSource, 'describePath'>, document: unknown, error: unknown): unknown {
  const describe = source.describePath?.bind(source);
  if (!describe || !(error instanceof WhitelistError)) return error;
  return new WhitelistError(error.issues.map((issue) => ({ path: describe(document, issue.path), message: issue.message })));
}
