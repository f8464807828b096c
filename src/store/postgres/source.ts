// Why not pg-listen (unmaintained): its close() does not stop a reconnect loop
// in progress, so after close() during an outage it keeps retrying and later
// opens a LISTEN connection that no one ends (checked); its "paranoid" SELECT
// has no timeout, so a silently dead socket hangs it instead of reconnecting;
// and a failed first connect() rejects while it retries behind the caller.
// So this file keeps its own small LISTEN client on a dedicated pg.Client.
import pg from 'pg';
import type { ChangeSet } from '../../model/snapshot.ts';
import type { ChangeHint, SourceStatus, WhitelistSource } from '../source.ts';
import { parseNotification } from './notification.ts';
import { describeConnectionString, errorCode, errorMessage, passwordScrubber, PostgresStoreError, storeError } from './errors.ts';
import { describeRowPath } from './row-path.ts';
import type { WhitelistDocument } from '../../model/document.ts';
import { readAll, readSome } from './rows.ts';

export { PostgresStoreError, passwordScrubber, describeConnectionString };

export const NOTIFY_CHANNEL = 'oingate_config';
export const LISTEN_APPLICATION_NAME = 'oingate-listen';
export const LOAD_APPLICATION_NAME = 'oingate';

const INITIAL_BACKOFF_MS = 100;
const DEFAULT_MAX_BACKOFF_MS = 5000;
const DEFAULT_KEEP_ALIVE_MS = 5000;
const CONNECT_TIMEOUT_MS = 5000;
const LOAD_TIMEOUT_MS = 10000;
const CLOSE_TIMEOUT_MS = 2000;

export interface SourceLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

export interface PostgresSourceOptions {
  connectionString: string;
  /** Periodic safety reload: `changed()` is called this often (seconds). Not positive: off. */
  resyncSeconds: number;
  logger?: SourceLogger;
  /** Interval of the listener's keep-alive query; it also bounds how long that query may take. Default 5000. */
  keepAliveMs?: number;
  /** Cap of the reconnect back-off (starts at 100 ms, doubles). Default 5000. */
  maxBackoffMs?: number;
  /** How long one load may take, lock waits included, enforced by the server. Default 10000. */
  loadTimeoutMs?: number;
}

// A digest of every column of every row, computed by the server in one
// statement (one snapshot): whole rows as text, in a fixed order.
const SELECT_REVISION = `SELECT md5(
  coalesce((SELECT string_agg(t::text, E'\\n' ORDER BY t.oin COLLATE "C") FROM oingate.tenants t), '') || E'\\x01' ||
  coalesce((SELECT string_agg(c::text, E'\\n' ORDER BY c.oin COLLATE "C", c.cidr) FROM oingate.tenant_cidrs c), '') || E'\\x01' ||
  coalesce((SELECT string_agg(k::text, E'\\n' ORDER BY k.oin COLLATE "C", k.kid COLLATE "C") FROM oingate.tenant_keys k), '') || E'\\x01' ||
  coalesce((SELECT string_agg(r::text, E'\\n' ORDER BY r.oin COLLATE "C", r.jti COLLATE "C") FROM oingate.revoked_tokens r), '')
) AS revision`;

const noopLogger: SourceLogger = { info() {}, warn() {}, error() {} };

function unref(t: NodeJS.Timeout): NodeJS.Timeout {
  t.unref();
  return t;
}

export class PostgresSource implements WhitelistSource {
  readonly description: string;

  private readonly connectionString: string;
  private readonly scrub: (text: string) => string;
  private readonly logger: SourceLogger;
  private readonly resyncMs: number;
  private readonly keepAliveMs: number;
  private readonly maxBackoffMs: number;
  private readonly loadTimeoutMs: number;
  private readonly pool: pg.Pool;

  private closed = false;
  private closing: Promise<void> | null = null;
  private changed: ((hint?: ChangeHint) => void) | null = null;
  /** OINs named by notifications in this turn of the event loop; null: none pending. */
  private burst: Set<string> | null = null;
  private burstFull = false;
  private status: ((status: SourceStatus) => void) | null = null;
  private listener: pg.Client | null = null;
  private connecting = false;
  private everConnected = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private keepAliveBusy = false;
  private resyncTimer: NodeJS.Timeout | null = null;

  constructor(options: PostgresSourceOptions) {
    this.connectionString = options.connectionString;
    this.description = describeConnectionString(options.connectionString);
    this.scrub = passwordScrubber(options.connectionString);
    this.logger = options.logger ?? noopLogger;
    this.resyncMs =
      Number.isFinite(options.resyncSeconds) && options.resyncSeconds > 0 ? options.resyncSeconds * 1000 : 0;
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
    this.maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    this.loadTimeoutMs = options.loadTimeoutMs ?? LOAD_TIMEOUT_MS;

    // pg parses the connection string when a client is made; do it once now
    // so a malformed string fails here, with a message free of the password
    // (parse errors can carry the input).
    try {
      new pg.Client({ connectionString: this.connectionString });
    } catch (err) {
      throw new PostgresStoreError(
        `invalid PostgreSQL connection string ${this.description}: ${this.scrub(errorMessage(err))}`,
        errorCode(err),
      );
    }

    this.pool = new pg.Pool({
      connectionString: this.connectionString,
      application_name: LOAD_APPLICATION_NAME,
      max: 2,
      // Outlives the resync interval, so a periodic resync reuses its connection.
      idleTimeoutMillis: Math.max(30_000, this.resyncMs + 30_000),
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // Server-side limits: a read stuck behind a lock (a migration, LOCK
      // TABLE) is cancelled by the server itself, so no backend is left
      // waiting. The client-side timeout is only a backstop for a dead network.
      statement_timeout: this.loadTimeoutMs,
      lock_timeout: this.loadTimeoutMs,
      query_timeout: this.loadTimeoutMs + 2000,
      keepAlive: true,
    });
    // An idle pooled client whose server goes away emits 'error' on the pool;
    // unhandled, that would crash the process. The pool drops the client.
    this.pool.on('error', (err) => {
      this.logger.warn({ store: this.description, err: this.safeMessage(err) }, 'PostgreSQL idle connection lost');
    });
  }

  private safeMessage(err: unknown): string {
    return this.scrub(errorMessage(err));
  }

  private wrap(err: unknown, what: string): PostgresStoreError {
    return storeError(err, what, this.description, this.scrub);
  }

  /** True while the LISTEN connection is up; false from the moment it is lost. */
  get connected(): boolean {
    return this.listener !== null;
  }

  /** Names a validation issue's row by OIN and kid or CIDR, as the rows did. */
  describePath(document: unknown, path: string): string {
    return describeRowPath(document, path);
  }

  /** The server's digest of all three tables; the holder skips a load when it is unchanged. */
  async revision(): Promise<string | undefined> {
    if (this.closed) return undefined;
    try {
      const { rows } = await this.pool.query<{ revision: string }>(SELECT_REVISION);
      return rows[0]?.revision;
    } catch (err) {
      throw this.wrap(err, 'cannot read PostgreSQL store');
    }
  }

  async load(): Promise<WhitelistDocument> {
    return this.read(readAll);
  }

  /**
   * A load, with the revision digested meanwhile on a second connection.
   * That connection takes its snapshot first (the first statement of its
   * transaction), and the load starts only then: the revision is of a state
   * no newer than the one loaded, so a change in between can only cost one
   * load too many, never be missed. At 100k tenants the digest takes the
   * server some 0.4 s that the first load no longer waits for.
   */
  async loadWithRevision(): Promise<{ document: WhitelistDocument; revision: Promise<string | undefined> }> {
    // Wrapped: an async function would wait for the digest it returns.
    const { revision } = await this.revisionOfSnapshotNow();
    return { document: await this.load(), revision };
  }

  /** Takes a snapshot now; its revision follows when computed (undefined when it cannot be read). */
  private async revisionOfSnapshotNow(): Promise<{ revision: Promise<string | undefined> }> {
    let taken!: () => void;
    const snapshotTaken = new Promise<void>((resolve) => {
      taken = resolve;
    });
    const revision = this.read(async (client) => {
      // A REPEATABLE READ transaction's snapshot is taken by its first statement.
      await client.query('SELECT 1');
      taken();
      const { rows } = await client.query<{ revision: string }>(SELECT_REVISION);
      return rows[0]?.revision;
    }).catch(() => undefined);
    // Settled without a snapshot only when the read failed: the load then goes ahead alone.
    await Promise.race([snapshotTaken, revision]);
    return { revision };
  }

  /**
   * Reads the named tenants, all their rows, in one snapshot: the ones that
   * exist as upserts, the others as removals.
   */
  async loadTenants(oins: readonly string[]): Promise<ChangeSet> {
    const list = [...oins];
    const document = await this.read((client) => readSome(client, list));
    const present = new Set(document.tenants.map((t) => t.oin));
    const removals = list.filter((oin) => !present.has(oin));
    return document.revokedTokens === undefined
      ? { upserts: document.tenants, removals }
      : { upserts: document.tenants, removals, revokedTokens: document.revokedTokens };
  }

  /** Runs `queries` in one REPEATABLE READ READ ONLY transaction on a pooled client. */
  private async read<T>(queries: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new PostgresStoreError(`PostgreSQL store ${this.description} is closed`);
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.wrap(err, 'cannot connect to PostgreSQL store');
    }
    // A checked-out client has no pool 'error' listener: a backend that dies
    // mid-load (restart, failover, pg_terminate_backend) would otherwise emit
    // an unhandled 'error' and end the process. The failed query rejects anyway.
    const onError = (): void => undefined;
    client.on('error', onError);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const result = await queries(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      // The client is destroyed, not rolled back and reused: its state is
      // unknown, and a ROLLBACK would only queue behind whatever is stuck.
      broken = err instanceof Error ? err : new Error(String(err));
      throw this.wrap(err, 'cannot read PostgreSQL store');
    } finally {
      // A broken client is destroyed and may still report errors: keep it quiet.
      if (!broken) client.off('error', onError);
      client.release(broken);
    }
  }

  async watch(changed: (hint?: ChangeHint) => void, status?: (status: SourceStatus) => void): Promise<void> {
    if (this.closed) throw new PostgresStoreError(`PostgreSQL store ${this.description} is closed`);
    if (this.changed) throw new Error('PostgresSource.watch() may be called only once');
    this.changed = changed;
    this.status = status ?? null;
    if (this.resyncMs > 0) {
      this.resyncTimer = unref(setInterval(() => this.signal(), this.resyncMs));
    }
    await this.connect();
  }

  /**
   * Collects the OINs of one burst of notifications (PostgreSQL delivers a
   * transaction's at its commit, together) and signals them once, on the
   * next turn of the event loop. A payload that is not ours asks for all.
   */
  private notified(payload: string | undefined): void {
    const oins = parseNotification(payload);
    if (oins === undefined) this.burstFull = true;
    if (this.burst === null) {
      this.burst = new Set();
      setImmediate(() => {
        const burst = this.burst ?? new Set<string>();
        const full = this.burstFull;
        this.burst = null;
        this.burstFull = false;
        this.signal(full ? undefined : { oins: [...burst] });
      });
    }
    if (oins !== undefined && !this.burstFull) for (const oin of oins) this.burst.add(oin);
  }

  /** Calls `changed`, never letting it throw out of a timer or an event. */
  private signal(hint?: ChangeHint): void {
    const changed = this.changed;
    if (!changed || this.closed) return;
    try {
      changed(hint);
    } catch (err) {
      this.logger.error({ store: this.description, err: this.safeMessage(err) }, 'whitelist change handler failed');
    }
  }

  /** Tells the watcher the listener's state, never letting it throw out of an event. */
  private report(status: SourceStatus): void {
    if (this.closed) return;
    try {
      this.status?.(status);
    } catch (err) {
      this.logger.error({ store: this.description, err: this.safeMessage(err) }, 'store status handler failed');
    }
  }


  /** One connection attempt; on failure it schedules the next. Never rejects. */
  private async connect(): Promise<void> {
    if (this.closed || this.connecting || this.listener) return;
    this.connecting = true;
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: LISTEN_APPLICATION_NAME,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    client.on('notification', (msg) => {
      if (client === this.listener && msg.channel === NOTIFY_CHANNEL) this.notified(msg.payload);
    });
    try {
      await client.connect();
      await client.query({ text: `LISTEN ${NOTIFY_CHANNEL}`, query_timeout: CONNECT_TIMEOUT_MS } as pg.QueryConfig);
    } catch (err) {
      this.connecting = false;
      client.end().catch(() => undefined);
      if (this.closed) return;
      const retryInMs = this.scheduleReconnect();
      const error = this.wrap(err, 'cannot connect to PostgreSQL store');
      this.logger.warn(
        { store: this.description, err: error.message, attempt: this.attempt, retryInMs },
        'PostgreSQL listener cannot connect; retrying',
      );
      // At once, not at the next resync: a listener that cannot log in means
      // changes are not being followed.
      this.report({ connected: false, error: error.message });
      return;
    }
    this.connecting = false;
    if (this.closed) {
      client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    this.attempt = 0;
    this.logger.info(
      { store: this.description },
      this.everConnected ? 'PostgreSQL listener reconnected' : 'PostgreSQL listener connected',
    );
    this.everConnected = true;
    this.report({ connected: true });
    this.keepAliveTimer = unref(setInterval(() => this.keepAlive(client), this.keepAliveMs));
    // Changes made while not listening were not signalled: ask for a full reload.
    this.signal();
  }

  private keepAlive(client: pg.Client): void {
    if (client !== this.listener || this.keepAliveBusy) return;
    this.keepAliveBusy = true;
    client
      .query({ text: 'SELECT 1', query_timeout: this.keepAliveMs } as pg.QueryConfig)
      .then(
        () => undefined,
        (err: unknown) => this.lost(client, err),
      )
      .finally(() => {
        this.keepAliveBusy = false;
      });
  }

  /** The listening connection is gone (error, end, failed keep-alive). */
  private lost(client: pg.Client, err: unknown): void {
    if (client !== this.listener) return; // a connecting or already-dropped client
    this.listener = null;
    this.keepAliveBusy = false;
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
    // Not awaited: on a silently dead socket, end() may never settle.
    client.end().catch(() => undefined);
    if (this.closed) return;
    const retryInMs = this.scheduleReconnect();
    this.logger.warn(
      { store: this.description, err: this.safeMessage(err), retryInMs },
      'PostgreSQL listener connection lost; reconnecting',
    );
    this.report({ connected: false });
  }

  private scheduleReconnect(): number {
    if (this.reconnectTimer) return 0;
    const delay = Math.min(INITIAL_BACKOFF_MS * 2 ** Math.min(this.attempt, 30), this.maxBackoffMs);
    this.attempt++;
    this.reconnectTimer = unref(
      setTimeout(() => {
        this.reconnectTimer = null;
        void this.connect();
      }, delay),
    );
    return delay;
  }

  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    for (const t of [this.reconnectTimer, this.keepAliveTimer]) if (t) clearTimeout(t);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.reconnectTimer = this.keepAliveTimer = this.resyncTimer = null;
    const listener = this.listener;
    this.listener = null;
    const ending: Promise<unknown>[] = [this.pool.end().catch(() => undefined)];
    if (listener) ending.push(listener.end().catch(() => undefined));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = unref(setTimeout(resolve, CLOSE_TIMEOUT_MS));
    });
    await Promise.race([Promise.all(ending), timeout]);
    clearTimeout(timer);
  }
}
