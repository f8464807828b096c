import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { verdictOf, type Verdict } from './gcra.ts';
import { LocalLimiter } from './local.ts';
import { DEFAULT_COMMAND_TIMEOUT_MS, describeUrl } from './redis-url.ts';
import type { RateLimit } from './rate.ts';

/** What /readyz shows under `rateLimit`. Never a password. */
export interface RateLimitStatus {
  /** The Redis URL without credentials or query. */
  readonly store: string;
  /** True while decisions are counted locally (Redis unreachable, slow or not yet connected). */
  readonly degraded: boolean;
  readonly lastError: string | null;
}

/** Running totals for metrics. */
export interface RateLimitStats {
  /** Decisions counted locally because Redis was unavailable. */
  readonly fallbackDecisions: number;
  /** Redis commands that failed or timed out. */
  readonly redisErrors: number;
}

/** The subset of a pino logger used here. */
export interface LimitLogger {
  warn(object: object, message: string): void;
  info(object: object, message: string): void;
}

export interface RedisLimiterOptions {
  url: string;
  /** Longest wait for Redis per decision before it is counted locally (default 50). */
  commandTimeoutMs?: number;
  logger?: LimitLogger;
  /** Called on each change between shared and local counting. */
  onStateChange?: (status: RateLimitStatus) => void;
  /** The fallback; one is made when not given. */
  local?: LocalLimiter;
  /** Probe back-off while degraded: first and longest wait (defaults 100 and 2000 ms). */
  probeMinMs?: number;
  probeMaxMs?: number;
  /** Sends the commands of one event-loop tick in one write (default false: no gain measured, see the notes). */
  enableAutoPipelining?: boolean;
  /**
   * Decides all requests of one event-loop turn in one script call (default
   * true): each decision is as exact and atomic as alone, at a fraction of
   * the client's and Redis's cost per call. False: one call per decision.
   */
  batch?: boolean;
}


/**
 * GCRA on Redis's own clock (TIME), so instances whose clocks disagree still
 * share one bucket. Each key holds its tenant's theoretical arrival time
 * (TAT) in microseconds since 2023-11-14 (small enough for doubles to keep
 * fractions of a microsecond) and expires when the bucket is full again. A
 * refusal writes nothing. A key that is not ours (another type, not a
 * number) reads as a full bucket and is overwritten, so it cannot wedge the
 * limiter. Decides KEYS[i] with ARGV[2i-1] per second and burst ARGV[2i], in
 * order (one key twice sees its own first write); returns per key
 * {allowed, debt}: how far the TAT lies ahead of now.
 * redis.replicate_commands makes TIME before a write legal on Redis < 5.
 */
const GCRA_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
  local interval = 1000000 / tonumber(ARGV[2 * i - 1])
  local window = interval * tonumber(ARGV[2 * i])
  local stored = redis.pcall('GET', KEYS[i])
  local tat = type(stored) == 'string' and tonumber(stored) or nil
  if tat == nil or tat < now then tat = now end
  local nxt = tat + interval
  if nxt - now > window + interval * 1e-6 then
    out[2 * i - 1] = 0
    out[2 * i] = string.format('%.17g', tat - now)
  else
    redis.call('SET', KEYS[i], string.format('%.17g', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1)
    out[2 * i - 1] = 1
    out[2 * i] = string.format('%.17g', nxt - now)
  end
end
return out
`;

/** Most decisions in one script call: bounds its time inside Redis (~10 µs each). */
const MAX_BATCH = 128;

interface Pending {
  readonly key: string;
  readonly limit: RateLimit;
  readonly nowMs: number;
  readonly resolve: (verdict: Verdict) => void;
}

const SCRIPT_SHA = createHash('sha1').update(GCRA_SCRIPT).digest('hex');

/**
 * The probe runs the real script on a key of its own: it proves writes work
 * (not a read-only replica, not out of memory) and loads the script into a
 * restarted Redis before the first decision needs it. The key lives ~1 µs.
 */
const PROBE_KEY = 'oingate:rl:probe';
const PROBE_LIMIT: RateLimit = { perSecond: 1_000_000, burst: 1 };
/** Shared for less than this before failing again counts as flapping: the probe back-off keeps growing. */
const STABLE_MS = 10_000;

/**
 * Rate limits shared through Redis: one EVALSHA for all decisions of one
 * event-loop turn (EVAL when Redis answers NOSCRIPT, e.g. after a flush).
 * On any error, or a call slower than the timeout, those decisions are
 * counted locally and the limiter turns degraded: later decisions go
 * straight to the local count (which holds each tenant's bucket as Redis
 * last reported it), no request waits for Redis, and a background probe
 * with back-off brings it back once Redis answers again.
 */
export class RedisLimiter {
  readonly #client: Redis;
  readonly #local: LocalLimiter;
  readonly #store: string;
  readonly #secret: string;
  readonly #logger: LimitLogger | undefined;
  readonly #onStateChange: ((status: RateLimitStatus) => void) | undefined;
  readonly #probeMinMs: number;
  readonly #probeMaxMs: number;
  readonly #commandTimeoutMs: number;
  #shared = false;
  #sharedSince = 0;
  #lastError: string | null = 'not connected yet';
  #probeTimer: NodeJS.Timeout | undefined;
  #probeDelay: number;
  #probing = false;
  #closed = false;
  #fallbackDecisions = 0;
  #redisErrors = 0;
  readonly #waiters = new Set<() => void>();
  readonly #batch: boolean;
  #queue: Pending[] = [];
  #flushScheduled = false;

  constructor(options: RedisLimiterOptions) {
    const { shown, secret } = describeUrl(options.url);
    this.#store = shown;
    this.#secret = secret;
    this.#logger = options.logger;
    this.#onStateChange = options.onStateChange;
    this.#local = options.local ?? new LocalLimiter();
    this.#commandTimeoutMs = Math.max(1, options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    this.#probeMinMs = options.probeMinMs ?? 100;
    this.#probeMaxMs = options.probeMaxMs ?? 2000;
    this.#probeDelay = this.#probeMinMs;
    this.#batch = options.batch ?? true;
    this.#client = new Redis(options.url, {
      // Never queue while disconnected: a decision fails over at once instead.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: this.#commandTimeoutMs,
      connectTimeout: Math.max(500, this.#commandTimeoutMs * 10),
      // Reconnect forever, in the background, at most every 2 s.
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), this.#probeMaxMs),
      reconnectOnError: null,
      lazyConnect: false,
      enableAutoPipelining: options.enableAutoPipelining ?? false,
    });
    // Without a listener ioredis prints every connection error to stderr.
    this.#client.on('error', (err: Error) => this.#fail(err));
    // 'close' follows the 'error' that caused it: keep that one as lastError.
    this.#client.on('close', () => this.#fail(new Error('connection closed'), !this.#shared));
    this.#client.on('ready', () => this.#probeSoon(0, true));
  }

  take(key: string, limit: RateLimit, nowMs: number): Verdict | Promise<Verdict> {
    if (!this.#shared) return this.#fallback(key, limit, nowMs);
    return new Promise((resolve) => {
      this.#queue.push({ key, limit, nowMs, resolve });
      if (!this.#batch) this.#flush();
      else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // After the poll phase: every request read in this turn joins the call.
        setImmediate(this.#flush);
      }
    });
  }

  status(): RateLimitStatus {
    return { store: this.#store, degraded: !this.#shared, lastError: this.#shared ? null : this.#lastError };
  }

  stats(): RateLimitStats {
    return { fallbackDecisions: this.#fallbackDecisions, redisErrors: this.#redisErrors };
  }

  /** Resolves true once decisions are shared, false after `timeoutMs` or on close. */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.#shared || this.#closed) return Promise.resolve(this.#shared);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve(this.#shared);
      };
      const timer = setTimeout(done, timeoutMs);
      this.#waiters.add(done);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#shared = false;
    clearTimeout(this.#probeTimer);
    for (const done of [...this.#waiters]) done();
    // quit() waits for Redis; disconnect() when it does not answer in time.
    const quit = this.#client.status === 'ready' ? this.#client.quit().catch(() => undefined) : Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise((resolve) => (timer = setTimeout(resolve, this.#commandTimeoutMs * 4)));
    await Promise.race([quit, late]);
    clearTimeout(timer);
    this.#client.disconnect(false);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    for (let start = 0; start < queue.length; start += MAX_BATCH) this.#send(queue.slice(start, start + MAX_BATCH));
  };

  #send(batch: Pending[]): void {
    if (!this.#shared) {
      for (const p of batch) p.resolve(this.#fallback(p.key, p.limit, p.nowMs));
      return;
    }
    this.#evaluate(batch).then(
      (reply) => {
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i]!;
          const debt = Number(reply[2 * i + 1]);
          this.#local.record(p.key, debt, p.nowMs);
          p.resolve(verdictOf(reply[2 * i] === 1, debt, p.limit));
        }
      },
      (err: unknown) => {
        this.#redisErrors++;
        this.#fail(err);
        for (const p of batch) p.resolve(this.#fallback(p.key, p.limit, p.nowMs));
      },
    );
  }

  async #evaluate(batch: ReadonlyArray<{ key: string; limit: RateLimit }>): Promise<Array<number | string>> {
    const args: Array<string | number> = batch.map((p) => p.key);
    for (const p of batch) args.push(p.limit.perSecond, p.limit.burst);
    try {
      return (await this.#client.evalsha(SCRIPT_SHA, batch.length, ...args)) as Array<number | string>;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return (await this.#client.eval(GCRA_SCRIPT, batch.length, ...args)) as Array<number | string>;
    }
  }

  #fallback(key: string, limit: RateLimit, nowMs: number): Verdict {
    this.#fallbackDecisions++;
    return this.#local.take(key, limit, nowMs);
  }

  #fail(err: unknown, keepLastError = false): void {
    if (this.#closed) return;
    if (!keepLastError) this.#lastError = this.#clean(err);
    if (this.#shared) {
      this.#shared = false;
      const flapping = Date.now() - this.#sharedSince < STABLE_MS;
      this.#probeDelay = flapping ? Math.min(this.#probeDelay * 2, this.#probeMaxMs) : this.#probeMinMs;
      this.#logger?.warn({ rateLimit: this.status() }, 'rate limit Redis unavailable: counting locally');
      this.#onStateChange?.(this.status());
    }
    this.#probeSoon(this.#probeDelay);
  }

  /** Schedules one probe; a pending one stands unless `now` (a fresh connection) asks for it at once. */
  #probeSoon(delay: number, now = false): void {
    if (this.#closed || this.#probing || (this.#probeTimer && !now)) return;
    clearTimeout(this.#probeTimer);
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      void this.#probe();
    }, delay);
    this.#probeTimer.unref();
  }

  async #probe(): Promise<void> {
    if (this.#closed || this.#shared) return;
    this.#probing = true;
    let ok = false;
    try {
      // Not connected: ioredis is reconnecting by itself; try again later.
      if (this.#client.status === 'ready') {
        await this.#evaluate([{ key: PROBE_KEY, limit: PROBE_LIMIT }]);
        ok = true;
      }
    } catch (err) {
      this.#lastError = this.#clean(err);
    } finally {
      this.#probing = false;
    }
    if (this.#closed) return;
    if (!ok) {
      this.#probeDelay = Math.min(this.#probeDelay * 2, this.#probeMaxMs);
      this.#probeSoon(this.#probeDelay);
      return;
    }
    this.#shared = true;
    this.#sharedSince = Date.now();
    this.#logger?.info({ rateLimit: this.status() }, 'rate limits shared through Redis');
    this.#onStateChange?.(this.status());
    for (const done of [...this.#waiters]) done();
  }

  /** The error's message, never the password, cut to 200 characters. */
  #clean(err: unknown): string {
    let text = err instanceof Error ? err.message : String(err);
    if (this.#secret) text = text.split(this.#secret).join('***');
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  }
}
