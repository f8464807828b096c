import { createServer, STATUS_CODES, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../observe/logger.ts';
import { declaredLength } from './body.ts';
import { refusalBody, type RefusalStatusCode } from './refusal.ts';
import { requestIdFor } from './request-id.ts';

/**
 * Header lines a request may carry. Node's parser keeps the first
 * `maxHeadersCount` and silently drops the rest (a Transfer-Encoding past
 * the cap would leave the request looking bodiless while its body is still
 * framed), so the cap is set one above this and a request that reaches it
 * is refused with 431 before anything reads it.
 */
export const MAX_HEADER_LINES = 1000;

export interface ListenOptions {
  /**
   * Headers must arrive within this; the gate gives the body as long again
   * (its own deadline), and Node's request timeout at twice this is the
   * backstop for bodies nobody reads.
   */
  readonly clientTimeoutMs: number;
  /** A declared Content-Length over this gets 413 before any `100 Continue`. */
  readonly bodyLimit: number;
  /** Open connections; more are closed at once. Unset: no cap. */
  readonly maxConnections?: number;
  /** Refusals the app never sees (parser errors, preflight) are logged here. */
  readonly logger?: Logger;
  /**
   * A server made elsewhere without a request listener (the HTTPS listener
   * of tls-server.ts), hardened here the same way as a plain one.
   */
  readonly server?: Server;
  /** Fields such a refusal's log line gets from its request (client IP, OIN header). */
  readonly logFields?: (request: IncomingMessage) => Record<string, unknown>;
}

type Verdict = readonly [RefusalStatusCode, string];

// Node's parser errors that mean "too large" rather than "malformed".
const PARSER_STATUS: Readonly<Record<string, Verdict>> = {
  HPE_HEADER_OVERFLOW: [431, 'header_overflow'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout'],
};

/** How often Node checks header and request timeouts (its default, 30 s, would make a 10 s timeout 40 s). */
export function checkingInterval(clientTimeoutMs: number): number {
  return Math.max(25, Math.min(1_000, Math.floor(clientTimeoutMs / 4)));
}

function rawResponse(status: RefusalStatusCode, requestId: string, extra = ''): string {
  const body = refusalBody(status, requestId);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\n${extra}connection: close\r\n\r\n${body}`
  );
}

/** Path without the query, for the log: the query may carry anything. */
export function pathOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** What must be refused before any handler reads the request: framing the app cannot see, or a Host it cannot trust. */
function preflight(request: IncomingMessage): Verdict | undefined {
  const raw = request.rawHeaders;
  if (raw.length > MAX_HEADER_LINES * 2) return [431, 'header_count'];
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts += 1;
  }
  // RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host; Node keeps the first of several silently.
  if (hosts > 1) return [400, 'host_repeated'];
  if (hosts === 0 && request.httpVersionMajor === 1 && request.httpVersionMinor >= 1) return [400, 'host_missing'];
  return undefined;
}

/**
 * A response that ends before its request (a refusal before or while the
 * body is read, a body timeout) must not let Node drain the rest. One
 * function for every response ('finish' comes once), not a closure each.
 */
function closeIfUnread(this: ServerResponse): void {
  if (!this.req.complete) this.req.socket.destroySoon();
}

/**
 * Opens a node:http server on host:port for `handler`, hardened for the
 * edge: header and request timeouts (408), a connection cap, a header-count
 * check (431), Host checks (400), 413 before `100 Continue`, and every answer
 * Node's parser would give itself (malformed framing, timeouts, oversized
 * headers, CONNECT) in the contract's JSON shape with x-request-id.
 */
export function listen(handler: RequestListener, host: string, port: number, options: ListenOptions): Promise<Server> {
  const { logger } = options;
  const timeouts = {
    // Checked below, so that the answer is the JSON refusal rather than Node's bare 400.
    requireHostHeader: false,
    headersTimeout: options.clientTimeoutMs,
    requestTimeout: options.clientTimeoutMs * 2,
    connectionsCheckingInterval: checkingInterval(options.clientTimeoutMs),
  };
  const server = options.server ?? createServer(timeouts);
  if (options.server) {
    // The same limits on a server made elsewhere; the checking interval is fixed at creation there.
    server.headersTimeout = timeouts.headersTimeout;
    server.requestTimeout = timeouts.requestTimeout;
  }
  server.maxHeadersCount = MAX_HEADER_LINES + 1;
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;

  const log = (verdict: Verdict, requestId: string, peer: string | undefined, request?: IncomingMessage): void => {
    logger?.warn(
      {
        requestId,
        peer,
        outcome: 'refused',
        reason: verdict[1],
        status: verdict[0],
        ...(request ? { method: request.method, path: pathOf(request.url), ...options.logFields?.(request) } : {}),
      },
      'decision',
    );
  };

  const refuse = (request: IncomingMessage, response: ServerResponse, verdict: Verdict): void => {
    const requestId = requestIdFor(request.headers['x-request-id']);
    const body = refusalBody(verdict[0], requestId);
    response.writeHead(verdict[0], {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-request-id': requestId,
      // The body, if any, is never read: the connection cannot be reused.
      connection: 'close',
    });
    response.end(body);
    log(verdict, requestId, request.socket.remoteAddress, request);
  };

  const guarded = (request: IncomingMessage, response: ServerResponse): void => {
    const verdict = preflight(request);
    if (verdict) return refuse(request, response, verdict);
    response.on('finish', closeIfUnread);
    handler(request, response);
  };

  server.on('request', guarded);
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    const verdict = preflight(request);
    if (verdict) return refuse(request, response, verdict);
    const declared = declaredLength(request);
    if (declared !== undefined && declared > options.bodyLimit) return refuse(request, response, [413, 'body_too_large']);
    response.writeContinue();
    guarded(request, response);
  });
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    refuse(request, response, [417, 'expectation']);
  });
  // No CONNECT listener: Node would drop the socket without a word.
  server.on('connect', (request: IncomingMessage, socket: Socket) => {
    const requestId = requestIdFor(request.headers['x-request-id']);
    const verdict: Verdict = [405, 'connect'];
    socket.end(rawResponse(405, requestId, 'allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n'));
    socket.destroySoon();
    log(verdict, requestId, socket.remoteAddress, request);
  });
  // Malformed HTTP, oversized headers and timeouts never reach the handler;
  // answer them in the contract's JSON shape and close.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // The response in progress on this socket (Node's own field): once its
    // headers are out, a second answer would corrupt the stream.
    const current = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!socket.writable || error.code === 'ECONNRESET' || current?.headersSent) {
      socket.destroy();
      return;
    }
    const verdict = PARSER_STATUS[error.code ?? ''] ?? ([400, `parser_${error.code ?? 'error'}`] as const);
    const requestId = requestIdFor(undefined);
    socket.end(rawResponse(verdict[0], requestId));
    socket.destroySoon();
    log(verdict, requestId, socket.remoteAddress);
  });
  let lastDropLogged = 0;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    // Logged at most once a second: a flood must not become a flood of log lines.
    const now = Date.now();
    if (now - lastDropLogged < 1_000) return;
    lastDropLogged = now;
    logger?.warn({ peer: data?.remoteAddress, maxConnections: server.maxConnections }, 'connection closed: too many open connections');
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function urlOf(server: Server): string {
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  // An https.Server is an http.Server with a TLS context.
  const scheme = typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function' ? 'https' : 'http';
  return `${scheme}://${host}:${address.port}`;
}

export function closeServer(server: Server, drainMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), drainMs);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
