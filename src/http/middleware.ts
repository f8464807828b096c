import type { Context, Middleware, Next } from 'koa';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CidrSet } from '../ip/cidr.ts';
import { rateLimitHeaders } from '../limit/limiter.ts';
import { cutByShutdown } from './drain.ts';
import { gate, newRequestState, peerOf, type GateOptions, type RequestState } from './gate.ts';
import { Refusal, refusalBody, type RefusalStatusCode } from './refusal.ts';
import { requestIdFor } from './request-id.ts';
import { pathOf } from './server.ts';

/** What an allowed request carries on `ctx.state.oingate`. */
export interface OingateState {
  readonly oin: string;
  readonly clientIp: string;
  /** The kid of the key that verified the token; null for a certificate-only tenant. */
  readonly kid: string | null;
  /** The verified token's claims; null for a certificate-only tenant. */
  readonly claims: Readonly<Record<string, unknown>> | null;
}

/** Where the gate keeps its per-request state on ctx.state, out of the way of the API's own keys. */
const STATE = Symbol('oingate.request');

/** The gate's state of this request (request id, decision, log facts), for the steps after it. */
export function requestStateOf(ctx: Context): RequestState {
  const state = (ctx.state as Record<symbol, RequestState | undefined>)[STATE];
  if (state === undefined) throw new Error('the oingate middleware has not seen this request');
  return state;
}

/** RateLimit-Limit / -Remaining / -Reset, and Retry-After on a 429, for a tenant with a limit. */
function setRateLimitHeaders(res: ServerResponse, state: RequestState): void {
  if (state.rateLimit === undefined) return;
  const headers = rateLimitHeaders(state.rateLimit);
  for (const name in headers) res.setHeader(name, headers[name] as string);
}

/** Longest original method and path logged: they are a front proxy's headers, logged and never decided on. */
const ORIGINAL_METHOD_CHARS = 32;
const ORIGINAL_PATH_CHARS = 2048;

/** One header's value as a string (Node joins repeated unknown headers), or undefined. */
function single(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Forward-auth mode: the method and path of the request the front proxy
 * asks about, as a trusted front proxy names them (nginx: X-Original-*,
 * Traefik: X-Forwarded-Method / -Uri); undefined from any other peer.
 */
function originalRequest(req: IncomingMessage, trusted: CidrSet): { method: string | undefined; path: string | undefined } | undefined {
  const headers = req.headers;
  const method = single(headers['x-original-method']) ?? single(headers['x-forwarded-method']);
  const uri = single(headers['x-original-uri']) ?? single(headers['x-forwarded-uri']);
  if (method === undefined && uri === undefined) return undefined;
  const peer = peerOf(req.socket);
  if (peer === null || !trusted.contains(peer)) return undefined;
  return {
    method: method?.slice(0, ORIGINAL_METHOD_CHARS),
    path: uri === undefined ? undefined : pathOf(uri)?.slice(0, ORIGINAL_PATH_CHARS),
  };
}

/** The §2 refusal, through Koa, so that middleware mounted before the gate still sees a normal response. */
function answerRefusal(ctx: Context, status: RefusalStatusCode, state: RequestState): void {
  ctx.respond = true;
  ctx.status = status;
  const res = ctx.res;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  if (status === 401) res.setHeader('www-authenticate', 'Bearer');
  if (status === 429) setRateLimitHeaders(res, state);
  // A body that was not read may still be arriving; do not try to reuse the connection.
  if (state.bodyUnread) res.setHeader('connection', 'close');
  ctx.body = refusalBody(status, state.requestId);
}

/**
 * The gate as Koa middleware: decides the request (contract §1-§2); a
 * refusal is answered here and `next` is never called; an allowed request
 * gets `ctx.state.oingate`, `ctx.request.body` and `ctx.request.rawBody`,
 * then the rest of the chain runs. Every request ends in exactly one
 * decision log line. Mount it before any body parser: it reads the body
 * itself, within the limit, as the exact bytes.
 */
export function gateMiddleware(options: GateOptions): Middleware {
  const { logger, metrics } = options;
  const gateRequest = gate(options);
  const logOriginal = options.logOriginalRequest === true;
  const trusted = options.policy.trustedProxies;

  function log(ctx: Context, state: RequestState, started: number, status: number): void {
    const req = ctx.req;
    // Cut at the drain deadline: not a client that left; nothing was answered unless headers went out.
    const cut = cutByShutdown(req);
    if (cut) {
      state.upstreamError = 'shutdown';
      if (state.outcome !== 'allowed') state.reason = 'shutdown';
      if (!ctx.res.headersSent) status = 503;
    }
    const clean = state.outcome === 'allowed' && state.upstreamError === undefined;
    // Building the line is skipped when its level is off (allowed requests log at info).
    if (clean ? !logger.isLevelEnabled('info') : !logger.isLevelEnabled('warn')) return;
    const original = logOriginal ? originalRequest(req, trusted) : undefined;
    logger[clean ? 'info' : 'warn'](
      {
        requestId: state.requestId,
        clientIp: state.clientIp,
        peer: req.socket.remoteAddress,
        oin: state.oin,
        // Undefined fields are left out of the line.
        oinHeader: state.oinHeader,
        oinBody: state.oinBody,
        forwardedFor: state.forwardedFor,
        certificateSha256: state.certificateSha256,
        certificateOin: state.certificateOin,
        certificate: state.certificateDetail,
        kid: state.kid,
        jti: state.jti,
        outcome: state.outcome ?? 'refused',
        reason: state.reason,
        status,
        method: original?.method ?? req.method,
        path: original?.path ?? pathOf(req.url),
        upstreamError: state.upstreamError,
        ms: Math.round((performance.now() - started) * 1000) / 1000,
      },
      'decision',
    );
  }

  return async function oingate(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    const req = ctx.req;
    const state = newRequestState(requestIdFor(req.headers['x-request-id']));
    (ctx.state as Record<symbol, RequestState>)[STATE] = state;
    ctx.res.setHeader('x-request-id', state.requestId);
    let status: number | undefined;
    try {
      const verdict = await gateRequest(req, state);
      if (!verdict.allowed) {
        answerRefusal(ctx, verdict.status, state);
        return;
      }
      const oingateState: OingateState = { oin: verdict.oin, clientIp: verdict.clientIp, kid: verdict.kid, claims: verdict.claims };
      ctx.state['oingate'] = oingateState;
      // On the answer whatever writes it (forward-auth 200, upstream, the API), unless that sets its own.
      setRateLimitHeaders(ctx.res, state);
      const request = ctx.request as unknown as { body: unknown; rawBody: Buffer | undefined };
      request.body = verdict.body;
      request.rawBody = state.body;
      await next();
    } catch (error) {
      if (state.outcome !== 'allowed' || error instanceof Refusal) {
        // Ours: an unexpected failure while deciding, or the forwarding step's 502/504.
        let code: RefusalStatusCode = 500;
        if (error instanceof Refusal) {
          code = error.status;
          if (state.outcome === 'allowed') metrics.upstreamFailed(error.reason);
          else state.reason = error.reason;
        } else {
          state.reason = 'internal_error';
          logger.error({ requestId: state.requestId, err: error }, 'unexpected error');
        }
        if (state.outcome === undefined) {
          state.outcome = 'refused';
          metrics.decision('refused', state.reason as string).inc();
        }
        if (ctx.res.headersSent || ctx.res.destroyed) ctx.res.destroy();
        else answerRefusal(ctx, code, state);
        return;
      }
      // The API's own error, after an allowed decision: Koa (or the API's error handler) answers it.
      status = (error as { status?: unknown }).status as number | undefined;
      if (typeof status !== 'number') status = 500;
      throw error;
    } finally {
      log(ctx, state, started, status ?? ctx.res.statusCode);
    }
  };
}
