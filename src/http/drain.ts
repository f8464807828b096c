import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { Roster, type Rostered } from './roster.ts';

/** Requests still in progress when the drain deadline cut their connection. */
const cutAtDeadline = new WeakSet<IncomingMessage>();

/**
 * Whether this request's connection was cut because the drain deadline
 * passed: its log line says `shutdown`, not that the client left.
 */
export function cutByShutdown(request: IncomingMessage): boolean {
  return cutAtDeadline.has(request);
}

/** One request in progress. */
class InFlight implements Rostered<InFlight> {
  rosterPrev: InFlight | undefined;
  rosterNext: InFlight | undefined;
  constructor(
    readonly request: IncomingMessage,
    readonly response: ServerResponse,
  ) {}
}

/** How often idle keep-alive connections are closed while draining. */
const IDLE_SWEEP_MS = 100;
/** After the cut, how long the cut requests get to write their log lines. */
const SETTLE_MS = 2_000;

/**
 * A graceful stop of the public listeners: from `close` on, `stopping` is
 * true (for /readyz), no connection is accepted, answers carry
 * `connection: close`, idle connections are closed, and requests in progress
 * may finish until the deadline; those still running then are cut and
 * marked, so that their log line says `shutdown`.
 */
export class Drain {
  #stopping = false;
  readonly #inFlight = new Roster<InFlight>();
  #settled: (() => void) | undefined;

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Requests in progress on the tracked listeners. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Wraps a listener's handler so that its requests are known until their handling ends. */
  track(handler: RequestListener): RequestListener {
    return (request, response) => {
      if (this.#stopping) response.setHeader('connection', 'close');
      const entry = new InFlight(request, response);
      this.#inFlight.add(entry);
      // Koa's handler returns the promise of the whole middleware chain, whose
      // end is the log line; any other handler ends when its response closes.
      // Inline arrows: a named closure per request costs a rename under tsx.
      const result = handler(request, response) as unknown;
      if (result instanceof Promise) result.then(() => this.#done(entry), () => this.#done(entry));
      else response.once('close', () => this.#done(entry));
    };
  }

  #done(entry: InFlight): void {
    this.#inFlight.delete(entry);
    if (this.#inFlight.size === 0) this.#settled?.();
  }

  /** Stops the servers, waits at most `drainMs` for requests in progress, then cuts the rest. */
  async close(servers: readonly Server[], drainMs: number): Promise<void> {
    this.#stopping = true;
    for (const { response } of this.#inFlight) {
      if (!response.headersSent) response.setHeader('connection', 'close');
    }
    const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    const sweep = (): void => {
      for (const server of servers) server.closeIdleConnections();
    };
    sweep();
    const sweeper = setInterval(sweep, IDLE_SWEEP_MS);
    const deadline = setTimeout(() => {
      for (const { request } of this.#inFlight) cutAtDeadline.add(request);
      for (const server of servers) server.closeAllConnections();
    }, drainMs);
    try {
      await closed;
    } finally {
      clearInterval(sweeper);
      clearTimeout(deadline);
    }
    // A cut request's handler ends a moment after its socket: let it log first.
    if (this.#inFlight.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, SETTLE_MS);
        this.#settled = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}
