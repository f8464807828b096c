import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher, Pool } from 'undici';
import type { CidrSet } from '../ip/cidr.ts';
import type { Metrics, UpstreamMetrics } from '../observe/metrics.ts';
import { connectionPeer, type RequestState } from './gate.ts';
import { Refusal } from './refusal.ts';

// RFC 9110 §7.6.1 connection-specific fields, plus what oingate sets itself.
// `expect` goes too: the body is already read, and undici refuses it.
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'host',
  'content-length',
  'x-request-id',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  // The client's own claims about the path it came by; only the gate's are passed on.
  'forwarded',
  'x-real-ip',
  'true-client-ip',
]);

/**
 * Whether an incoming header may go upstream. Every header with `_` in its
 * name is dropped (as nginx does): CGI/WSGI upstreams fold `_` and `-`
 * together, so `X_Authenticated_Oin` would reach them as
 * `x-authenticated-oin`. Every `x-authenticated*` name is oingate's alone.
 */
function forwardable(name: string, dropped: ReadonlySet<string>): boolean {
  return !name.includes('_') && !name.startsWith('x-authenticated') && !NOT_FORWARDED.has(name) && !dropped.has(name);
}

const NOT_RETURNED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'x-request-id',
]);

const NO_TOKENS: ReadonlySet<string> = new Set();
const DONE: Promise<void> = Promise.resolve();
/** What nearly every Connection header says (every Node upstream's answer: keep-alive), parsed once. */
const USUAL_TOKENS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['keep-alive', new Set(['keep-alive'])],
  ['close', new Set(['close'])],
]);

function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  // Most requests carry no Connection header: no split, no Set.
  if (value === undefined) return NO_TOKENS;
  const usual = typeof value === 'string' ? USUAL_TOKENS.get(value) : undefined;
  if (usual !== undefined) return usual;
  const joined = Array.isArray(value) ? value.join(',') : value;
  return new Set(joined.split(',').map((token) => token.trim().toLowerCase()).filter(Boolean));
}

export const DEFAULT_UPSTREAM_CONNECTIONS = 256;
export const DEFAULT_UPSTREAM_QUEUE = 512;

export interface ProxyOptions {
  readonly upstream: URL;
  readonly timeoutMs: number;
  /** Only a trusted front proxy's x-forwarded-proto/-host are passed on. */
  readonly trustedProxies: CidrSet;
  /** Upstream connections, and so requests in flight to the upstream at once. */
  readonly connections?: number;
  /** Requests that may wait for a connection; more get 503 (upstream_queue_full). */
  readonly maxQueued?: number;
  /** Where the upstream's latency and status classes are counted. */
  readonly metrics?: Metrics;
}

/** A request waiting for an upstream connection. */
interface Waiter {
  start(): void;
}

/** What the proxy holds: requests in flight upstream, and those waiting for a connection. */
export interface ProxyLoad {
  readonly active: number;
  readonly queued: number;
}

/**
 * Forwards allowed requests over one pooled keep-alive client. The pool's
 * own queue is never used: requests beyond its connections wait here, in a
 * bounded queue they leave as soon as their client does, so that a request
 * whose client has gone never reaches the upstream.
 */
/** What the proxy takes of undici, which openUpstreamProxy loads. */
export type UndiciPool = Pick<typeof import('undici'), 'Pool'>;

/**
 * The proxy of proxy mode, with undici (~130 ms to import) loaded only
 * now: a forward-auth start never loads it, a proxy start without it fails.
 */
export async function openUpstreamProxy(options: ProxyOptions): Promise<UpstreamProxy> {
  return new UpstreamProxy(options, await import('undici'));
}

export class UpstreamProxy {
  readonly #pool: Pool;
  readonly #options: ProxyOptions;
  readonly #host: string;
  readonly #connections: number;
  readonly #maxQueued: number;
  readonly #observed: UpstreamMetrics | undefined;
  // Insertion-ordered: the first entry is the longest waiting; deletion is O(1).
  readonly #waiting = new Set<Waiter>();
  #active = 0;

  constructor(options: ProxyOptions, undici: UndiciPool) {
    this.#options = options;
    this.#host = options.upstream.host;
    this.#connections = options.connections ?? DEFAULT_UPSTREAM_CONNECTIONS;
    this.#maxQueued = options.maxQueued ?? DEFAULT_UPSTREAM_QUEUE;
    this.#observed = options.metrics?.upstream();
    this.#pool = new undici.Pool(options.upstream.origin, {
      connections: this.#connections,
      keepAliveTimeout: 4_000,
      connect: { timeout: options.timeoutMs },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  }

  /** Builds the upstream request's headers from the client's raw header lines. */
  #headers(request: IncomingMessage, state: RequestState): string[] {
    const dropped = connectionTokens(request.headers.connection);
    const headers: string[] = [];
    const raw = request.rawHeaders;
    // A certificate-only tenant's request was allowed without a token: an
    // Authorization header it carries was never checked, so it must not
    // reach an upstream that might believe it.
    const unchecked = state.decision !== undefined && state.decision.kid === null;
    for (let i = 0; i < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      if (!forwardable(name, dropped) || (unchecked && name === 'authorization')) continue;
      headers.push(raw[i] as string, raw[i + 1] as string);
    }
    // The peer as the gate parsed and formatted it, once per connection.
    const { address: peer, text: peerAddress } = connectionPeer(request.socket);
    const incomingFor = request.headers['x-forwarded-for'];
    const trusted = peer !== null && this.#options.trustedProxies.contains(peer);
    const proto = trusted ? request.headers['x-forwarded-proto'] : undefined;
    const forwardedHost = trusted ? request.headers['x-forwarded-host'] : undefined;
    headers.push(
      'host', this.#host,
      'x-authenticated-oin', state.decision?.oin ?? '',
    );
    // Set by the gate (forwarded claims, the certificate digest): name/value pairs.
    const extra = state.extraHeaders;
    if (extra !== undefined) headers.push(...extra);
    headers.push(
      'x-request-id', state.requestId,
      'x-forwarded-for', incomingFor ? `${incomingFor}, ${peerAddress}` : peerAddress,
      'x-forwarded-proto', typeof proto === 'string' ? proto : 'http',
    );
    const host = typeof forwardedHost === 'string' ? forwardedHost : request.headers.host;
    if (host !== undefined) headers.push('x-forwarded-host', host);
    return headers;
  }

  get load(): ProxyLoad {
    return { active: this.#active, queued: this.#waiting.size };
  }

  /**
   * Waits for one of the upstream connections to be free. Resolves true once the
   * request holds one, false when its client left while it waited (it is
   * then never sent); rejects with 503 when the queue is full and 504 when
   * the wait outlasts the upstream timeout.
   */
  #wait(res: ServerResponse, state: RequestState): Promise<boolean> {
    if (this.#waiting.size >= this.#maxQueued) {
      state.upstreamError = 'upstream_queue_full';
      return Promise.reject(new Refusal(503, 'upstream_queue_full'));
    }
    return new Promise<boolean>((resolve, reject) => {
      const leave = (): void => {
        this.#waiting.delete(waiter);
        clearTimeout(timer);
        res.off('close', onClientClose);
      };
      const waiter: Waiter = {
        start: () => {
          leave();
          this.#active += 1;
          resolve(true);
        },
      };
      const onClientClose = (): void => {
        leave();
        state.upstreamError ??= 'client_gone_queued';
        res.statusCode = 499; // nginx's "client closed request", for the log only
        resolve(false);
      };
      const timer = setTimeout(() => {
        leave();
        state.upstreamError = 'upstream_queue_timeout';
        reject(new Refusal(504, 'upstream_queue_timeout'));
      }, this.#options.timeoutMs);
      res.once('close', onClientClose);
      this.#waiting.add(waiter);
    });
  }

  #release(): void {
    this.#active -= 1;
    // Nobody waits, nearly always: no iterator for that.
    if (this.#waiting.size === 0) return;
    const next = this.#waiting.values().next();
    if (!next.done) next.value.start();
  }

  /**
   * Streams the upstream's answer straight into the client's response with
   * undici's dispatch API: no intermediate Readable, no AbortSignal (profiled:
   * both cost more per request than the rest of the proxying). Resolves when
   * the exchange is over; rejects with a Refusal (502/504) only while nothing
   * has been sent to the client yet.
   */
  forward(request: IncomingMessage, res: ServerResponse, state: RequestState): Promise<void> {
    // Gone while the gate decided: its 'close' has fired already, nothing would see it again.
    if (res.destroyed) {
      state.upstreamError ??= 'client_gone';
      res.statusCode = 499;
      return DONE;
    }
    // The common case takes a free connection at once: no wait, no promise of its own.
    if (this.#active < this.#connections) {
      this.#active += 1;
      return this.#send(request, res, state);
    }
    return this.#wait(res, state).then((holds) => (holds ? this.#send(request, res, state) : undefined));
  }

  /** Sends the request on the connection slot the caller holds; the exchange gives it back. */
  #send(request: IncomingMessage, res: ServerResponse, state: RequestState): Promise<void> {
    const exchange = new Exchange(res, state, this.#freeSlot, this.#observed);
    try {
      return exchange.run(this.#pool, {
        method: request.method as string,
        path: request.url as string,
        headers: this.#headers(request, state),
        body: state.body ?? null,
      });
    } catch (error) {
      // Thrown before undici took the request (its headers, dispatch): no callback will end the exchange.
      exchange.abandon();
      return Promise.reject(error);
    }
  }

  /** Gives a connection slot back; made once and handed to every exchange. */
  readonly #freeSlot = (): void => this.#release();

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/** undici's HeadersTimeoutError, BodyTimeoutError and ConnectTimeoutError, by code: undici is not imported here. */
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function refusalFor(error: unknown, state: RequestState): Refusal {
  const code = (error as { code?: unknown } | undefined)?.code;
  const timedOut = typeof code === 'string' && TIMEOUT_CODES.has(code);
  state.upstreamError = (error as { code?: string }).code ?? (error as Error).message;
  return timedOut ? new Refusal(504, 'upstream_timeout') : new Refusal(502, 'upstream_failed');
}

/**
 * One request's exchange with the upstream. It is undici's handler itself,
 * so the callbacks are methods rather than closures made per request
 * (profiled; under tsx each named closure is also renamed by a
 * defineProperty call).
 */
class Exchange implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;
  /** The final answer's head has been passed on to the client. */
  #started = false;
  /** Over for the client: answered, failed, or the client left. */
  #settled = false;
  #released = false;
  #resolve: () => void = noop;
  #reject: (refusal: Refusal) => void = noop;
  readonly #onClientClose = this.#clientClosed.bind(this);
  readonly #sentAt = performance.now();

  constructor(
    readonly res: ServerResponse,
    readonly state: RequestState,
    readonly freeSlot: () => void,
    readonly observed: UpstreamMetrics | undefined,
  ) {}

  /** Settles when the exchange is over; a synchronous throw from dispatch is the caller's (see abandon). */
  run(pool: Pool, options: Dispatcher.DispatchOptions): Promise<void> {
    const over = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // on, not once: #finish takes it off again, and once() would wrap it per request.
    this.res.on('close', this.#onClientClose);
    pool.dispatch(options, this);
    return over;
  }

  /** Given up before undici took the request: no callback will end it or give the slot back. */
  abandon(): void {
    this.#settled = true;
    this.res.off('close', this.#onClientClose);
    this.release();
  }

  /**
   * The slot is given back from undici's last callback (end or error), not
   * when the exchange settles: a client that leaves settles it at once,
   * while undici still holds the connection until the abort lands.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.freeSlot();
  }

  #finish(error?: Refusal): void {
    if (this.#settled) return;
    this.#settled = true;
    this.res.off('close', this.#onClientClose);
    if (error) this.#reject(error);
    else this.#resolve();
  }

  /** The client left before the exchange ended: abandon the upstream side too. */
  #clientClosed(): void {
    if (this.res.writableFinished) return;
    this.state.upstreamError ??= 'client_gone';
    if (!this.#started) this.res.statusCode = 499; // nginx's "client closed request", for the log only
    this.#finish();
    this.#controller?.abort(new Error('client closed the connection'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // The client left before a connection was free: never send it.
    if (this.#settled) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.#settled) {
      controller.abort(new Error('client closed the connection'));
      return;
    }
    if (statusCode < 200) return; // 1xx: informational, the final answer follows
    this.#started = true;
    this.observed?.responded(statusCode, (performance.now() - this.#sentAt) / 1000);
    const res = this.res;
    const dropped = connectionTokens(headers['connection']);
    res.statusCode = statusCode;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || NOT_RETURNED.has(name) || dropped.has(name)) continue;
      res.setHeader(name, value);
    }
    // The gate's middleware has set it already; a caller without it has not.
    if (res.getHeader('x-request-id') !== this.state.requestId) res.setHeader('x-request-id', this.state.requestId);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) {
      controller.abort(new Error('client closed the connection'));
      return;
    }
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.release();
    if (!this.#settled) this.res.end();
    this.#finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.release();
    if (this.#settled) return;
    if (!this.#started) {
      this.#finish(refusalFor(error, this.state));
      return;
    }
    // Headers are gone already: the only honest signal left is a cut connection.
    this.state.upstreamError ??= `body: ${error.message}`;
    this.res.destroy();
    this.#finish();
  }
}

function noop(): void {}
