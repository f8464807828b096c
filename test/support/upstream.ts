/**
 * Test harness: a real upstream HTTP server on loopback that records every
 * request it receives, exactly as it arrived (method, raw request target,
 * raw header lines, body bytes), and answers through a swappable handler.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { RequestState } from '../../src/http/gate.ts';
import type { UpstreamProxy } from '../../src/http/proxy.ts';
import { Refusal, refusalBody } from '../../src/http/refusal.ts';

export interface RecordedRequest {
  readonly method: string;
  /** The request target exactly as sent on the request line. */
  readonly url: string;
  /** Alternating names and values, as they came over the wire. */
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
  /** Body bytes; filled in as they arrive, complete once `done` resolves. */
  body: Buffer;
  readonly done: Promise<void>;
}

/** Answers one request; called once its body has been read completely. */
export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, recorded: RecordedRequest) => void | Promise<void>;

export interface Upstream {
  readonly url: string;
  readonly port: number;
  /** Every request received, in order; recorded as soon as its headers arrive. */
  readonly requests: RecordedRequest[];
  /** Replaces the handler; without an argument, restores the default echo. */
  handle(handler?: UpstreamHandler): void;
  /** Forgets recorded requests and restores the default echo handler. */
  reset(): void;
  close(): Promise<void>;
}

/** All values of a header, by case-insensitive name, from the raw header lines. */
export function headerValues(recorded: RecordedRequest, name: string): string[] {
  const wanted = name.toLowerCase();
  const values: string[] = [];
  for (let i = 0; i < recorded.rawHeaders.length; i += 2) {
    if ((recorded.rawHeaders[i] as string).toLowerCase() === wanted) values.push(recorded.rawHeaders[i + 1] as string);
  }
  return values;
}

/** The lower-cased header names, from the raw header lines. */
export function headerNames(recorded: RecordedRequest): string[] {
  const names: string[] = [];
  for (let i = 0; i < recorded.rawHeaders.length; i += 2) names.push((recorded.rawHeaders[i] as string).toLowerCase());
  return names;
}

/** The default handler: 200 with a JSON echo of what arrived. */
export const echo: UpstreamHandler = (_req, res, recorded) => {
  const body = JSON.stringify({
    method: recorded.method,
    url: recorded.url,
    rawHeaders: recorded.rawHeaders,
    body: recorded.body.toString('base64'),
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

/** Waits `delayMs` before sending anything (headers included), then hands over to `then`. */
export function slow(delayMs: number, then: UpstreamHandler = echo): UpstreamHandler {
  return (req, res, recorded) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        if (res.destroyed || res.socket?.destroyed) {
          resolve();
          return;
        }
        void Promise.resolve(then(req, res, recorded)).then(resolve, resolve);
      }, delayMs);
      // The caller giving up (a gateway timeout) must not keep a timer alive.
      res.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
}

/** Destroys the connection without answering: a crash mid-request. */
export const hangUp: UpstreamHandler = (req) => {
  req.socket.destroy();
};

export interface StreamedBody {
  readonly handler: UpstreamHandler;
  readonly bytes: number;
  /** sha256 (hex) of the whole body. */
  readonly sha256: string;
}

/**
 * A large body sent in chunks with chunked transfer encoding (no
 * content-length), yielding to the event loop between chunks so it really
 * is streamed rather than buffered whole.
 */
export function streamBody(totalBytes: number, chunkBytes = 64 * 1024, status = 200): StreamedBody {
  const data = randomBytes(totalBytes);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const handler: UpstreamHandler = (_req, res) =>
    new Promise<void>((resolve, reject) => {
      res.writeHead(status, { 'content-type': 'application/octet-stream', 'x-streamed': 'yes' });
      let offset = 0;
      const next = (): void => {
        if (res.destroyed) {
          resolve();
          return;
        }
        if (offset >= data.length) {
          res.end(resolve);
          return;
        }
        const chunk = data.subarray(offset, offset + chunkBytes);
        offset += chunk.length;
        if (res.write(chunk)) setImmediate(next);
        else res.once('drain', next);
      };
      res.once('error', reject);
      next();
    });
  return { handler, bytes: totalBytes, sha256 };
}

/** Starts an upstream on 127.0.0.1 with an OS-chosen port. */
export async function startUpstream(initial: UpstreamHandler = echo): Promise<Upstream> {
  let handler = initial;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let finish!: () => void;
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders: [...req.rawHeaders],
      headers: req.headers,
      body: Buffer.alloc(0),
      done: new Promise<void>((resolve) => {
        finish = resolve;
      }),
    };
    requests.push(recorded);
    const current = handler;
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      recorded.body = Buffer.concat(chunks);
    });
    req.on('error', () => finish());
    req.on('end', () => {
      recorded.body = Buffer.concat(chunks);
      finish();
      Promise.resolve(current(req, res, recorded)).catch(() => res.destroy());
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    handle(next = echo) {
      handler = next;
    },
    reset() {
      requests.length = 0;
      handler = echo;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}

/** A loopback port that nothing listens on: bound by the OS, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface ProxyFront {
  readonly url: string;
  /** The state of every request, as the proxy left it (upstreamError, the status for the log). */
  readonly states: RequestState[];
  close(): Promise<void>;
}

/**
 * A front server that forwards every request through `proxy` as if the gate
 * had allowed it for `oin`, with `extraHeaders` as the gate's extra headers:
 * the proxy's own behaviour over real sockets, without a whitelist.
 */
export async function startProxyFront(
  proxy: UpstreamProxy,
  oin: string,
  extraHeaders?: string[],
  /** Time the "gate" takes before forwarding, for clients that leave meanwhile. */
  delayMs = 0,
): Promise<ProxyFront> {
  const states: RequestState[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const state = {
        requestId: randomUUID(),
        decision: { allowed: true, oin, clientIp: '127.0.0.1', kid: 'k' } as unknown as RequestState['decision'],
        body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
        ...(extraHeaders ? { extraHeaders } : {}),
      } as RequestState;
      states.push(state);
      const forward = (): void => {
        proxy.forward(req, res, state).catch((error: unknown) => {
          const status = error instanceof Refusal ? error.status : 500;
          if (res.headersSent || res.destroyed) return res.destroy();
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(refusalBody(status, state.requestId));
        });
      };
      if (delayMs > 0) setTimeout(forward, delayMs);
      else forward();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    states,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
