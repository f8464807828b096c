import type { Context } from 'koa';
import { pipeline } from 'node:stream/promises';
import { Pool, errors } from 'undici';
import type { GateState } from './gate.ts';
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
  #headers(ctx: Context, state: GateState): string[] {
    const request = ctx.req;
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

  async forward(ctx: Context): Promise<void> {
    const state = ctx.state as GateState;
    const abort = new AbortController();
    const onClose = () => {
      if (!ctx.res.writableFinished) abort.abort();
    };
    ctx.res.once('close', onClose);
    let response: Awaited<ReturnType<Pool['request']>>;
    try {
      response = await this.#pool.request({
        method: ctx.req.method as string,
        path: ctx.req.url as string,
        headers: this.#headers(ctx, state),
        body: state.body ?? null,
        signal: abort.signal,
      });
    } catch (error) {
      ctx.res.off('close', onClose);
      if (abort.signal.aborted) {
        state.upstreamError = 'client_gone';
        ctx.req.socket.destroy();
        return;
      }
      throw this.#refusalFor(error, state);
    }

    const dropped = connectionTokens(response.headers['connection']);
    ctx.respond = false;
    const res = ctx.res;
    res.statusCode = response.statusCode;
    for (const [name, value] of Object.entries(response.headers)) {
      if (value === undefined || NOT_RETURNED.has(name) || dropped.has(name)) continue;
      res.setHeader(name, value);
    }
    res.setHeader('x-request-id', state.requestId);
    try {
      await pipeline(response.body, res);
    } catch (error) {
      // Headers are gone already: the only honest signal left is a cut connection.
      state.upstreamError = abort.signal.aborted ? 'client_gone' : `body: ${(error as Error).message}`;
      res.destroy();
    } finally {
      ctx.res.off('close', onClose);
    }
  }

  #refusalFor(error: unknown, state: GateState): Refusal {
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
