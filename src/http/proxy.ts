import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, errors } from 'undici';
import type { RequestState } from './gate.ts';
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
]);

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

function connectionTokens(value: string | string[] | undefined): Set<string> {
  const joined = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(joined.split(',').map((token) => token.trim().toLowerCase()).filter(Boolean));
}

export interface ProxyOptions {
  readonly upstream: URL;
  readonly timeoutMs: number;
  /** Only a trusted front proxy's x-forwarded-proto/-host are passed on. */
  readonly peerIsTrusted: (peer: string | undefined) => boolean;
}

/** Forwards allowed requests over one pooled keep-alive client. */
export class UpstreamProxy {
  readonly #pool: Pool;
  readonly #options: ProxyOptions;
  readonly #host: string;

  constructor(options: ProxyOptions) {
    this.#options = options;
    this.#host = options.upstream.host;
    this.#pool = new Pool(options.upstream.origin, {
      connections: 256,
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
    for (let i = 0; i < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      if (NOT_FORWARDED.has(name) || dropped.has(name) || name.startsWith('x-authenticated-')) continue;
      headers.push(raw[i] as string, raw[i + 1] as string);
    }
    const peer = request.socket.remoteAddress ?? '';
    const peerAddress = peer.startsWith('::ffff:') && peer.includes('.') ? peer.slice(7) : peer;
    const incomingFor = request.headers['x-forwarded-for'];
    const trusted = this.#options.peerIsTrusted(request.socket.remoteAddress);
    const proto = trusted ? request.headers['x-forwarded-proto'] : undefined;
    const forwardedHost = trusted ? request.headers['x-forwarded-host'] : undefined;
    headers.push(
      'host', this.#host,
      'x-authenticated-oin', state.decision?.oin ?? '',
      'x-request-id', state.requestId,
      'x-forwarded-for', incomingFor ? `${incomingFor}, ${peerAddress}` : peerAddress,
      'x-forwarded-proto', typeof proto === 'string' ? proto : 'http',
    );
    const host = typeof forwardedHost === 'string' ? forwardedHost : request.headers.host;
    if (host !== undefined) headers.push('x-forwarded-host', host);
    return headers;
  }

  async forward(request: IncomingMessage, res: ServerResponse, state: RequestState): Promise<void> {
    let response: Awaited<ReturnType<Pool['request']>>;
    try {
      // No AbortSignal: one per request costs more than the proxying itself
      // (profiled). A client that leaves while the upstream thinks costs at
      // most the upstream timeout; one that leaves mid-body is handled below.
      response = await this.#pool.request({
        method: request.method as string,
        path: request.url as string,
        headers: this.#headers(request, state),
        body: state.body ?? null,
      });
    } catch (error) {
      throw this.#refusalFor(error, state);
    }

    const body = response.body;
    // An error on the upstream body must never go unheard: unhandled, it
    // would end the process.
    body.on('error', (error: Error) => {
      state.upstreamError ??= `body: ${error.message}`;
      res.destroy();
    });
    if (res.destroyed) {
      state.upstreamError = 'client_gone';
      res.statusCode = 499; // nginx's "client closed request", for the log only
      body.destroy();
      return;
    }
    const dropped = connectionTokens(response.headers['connection']);
    res.statusCode = response.statusCode;
    for (const name in response.headers) {
      const value = response.headers[name];
      if (value === undefined || NOT_RETURNED.has(name) || dropped.has(name)) continue;
      res.setHeader(name, value);
    }
    res.setHeader('x-request-id', state.requestId);
    // pipe(), not stream.pipeline(): pipeline allocates an AbortController
    // per call, which profiling showed to cost more than the proxying.
    await new Promise<void>((resolve) => {
      res.once('close', () => {
        if (!res.writableFinished) {
          // The client left mid-body: abandon the upstream response too.
          state.upstreamError ??= 'client_gone';
          body.destroy();
        }
        resolve();
      });
      body.pipe(res);
    });
  }

  #refusalFor(error: unknown, state: RequestState): Refusal {
    const timedOut =
      error instanceof errors.HeadersTimeoutError ||
      error instanceof errors.BodyTimeoutError ||
      error instanceof errors.ConnectTimeoutError;
    state.upstreamError = (error as { code?: string }).code ?? (error as Error).message;
    return timedOut ? new Refusal(504, 'upstream_timeout') : new Refusal(502, 'upstream_failed');
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
