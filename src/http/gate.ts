import type { Context, Next } from 'koa';
import { decide, staticKeys, type Decision, type DecisionPolicy, type KeyLookup } from '../decision.ts';
import type { Snapshot, Tenant } from '../model/snapshot.ts';
import type { Logger } from '../observe/logger.ts';
import type { Metrics } from '../observe/metrics.ts';
import { readBody } from './body.ts';
import { Refusal, refusalBody, type RefusalStatusCode } from './refusal.ts';
import { requestIdFor } from './request-id.ts';

/** What the public listener needs; the same for proxy and forward-auth modes. */
export interface GateOptions {
  readonly snapshot: () => Snapshot | undefined;
  readonly policy: DecisionPolicy;
  readonly oinHeader: string;
  readonly bodyLimit: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly keys?: KeyLookup;
  /**
   * Asked when a token names a kid the tenant does not have; resolves true
   * when the tenant's keys may have changed (a JWKS refetch), so the decision
   * is taken once more.
   */
  readonly refreshKeys?: (tenant: Tenant) => Promise<boolean>;
  readonly now?: () => number;
}

/** Per-request facts the log line reports; filled in as the request goes. */
export interface GateState {
  requestId: string;
  decision?: Decision & { allowed: true };
  body?: Buffer | undefined;
  clientIp?: string | undefined;
  oin?: string | undefined;
  outcome?: 'allowed' | 'refused';
  reason?: string;
  upstreamError?: string;
}

function state(ctx: Context): GateState {
  return ctx.state as GateState;
}

/**
 * The one error path of the public listener: every refusal and every
 * unexpected error becomes the contract's JSON body here, and every request
 * ends in exactly one log line.
 */
export function respond(options: Pick<GateOptions, 'logger' | 'metrics'>) {
  return async function respondMiddleware(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    const gate = state(ctx);
    gate.requestId = requestIdFor(ctx.req.headers['x-request-id']);
    ctx.set('x-request-id', gate.requestId);
    try {
      await next();
    } catch (error) {
      let status: RefusalStatusCode = 500;
      if (error instanceof Refusal) {
        status = error.status;
        gate.reason = error.reason;
      } else {
        gate.reason = 'internal_error';
        options.logger.error({ requestId: gate.requestId, err: error }, 'unexpected error');
      }
      if (gate.outcome === undefined) {
        gate.outcome = 'refused';
        options.metrics.decisions.labels('refused', gate.reason).inc();
      }
      if (ctx.headerSent || !ctx.writable) {
        ctx.req.socket.destroy();
      } else {
        writeRefusal(ctx, status, gate.requestId);
      }
    } finally {
      const level = gate.outcome === 'allowed' && gate.upstreamError === undefined ? 'info' : 'warn';
      options.logger[level](
        {
          requestId: gate.requestId,
          clientIp: gate.clientIp,
          oin: gate.oin,
          outcome: gate.outcome ?? 'refused',
          reason: gate.reason,
          status: ctx.respond === false ? ctx.res.statusCode : ctx.status,
          method: ctx.method,
          path: ctx.path,
          ...(gate.upstreamError ? { upstreamError: gate.upstreamError } : {}),
          ms: Math.round((performance.now() - started) * 1000) / 1000,
        },
        'decision',
      );
    }
  };
}

export function writeRefusal(ctx: Context, status: RefusalStatusCode, requestId: string): void {
  ctx.status = status;
  ctx.type = 'application/json';
  if (status === 401) ctx.set('www-authenticate', 'Bearer');
  // An unread body may still be arriving; do not try to reuse the connection.
  if (status === 413 || status === 415) ctx.set('connection', 'close');
  ctx.body = refusalBody(status, requestId);
}

/**
 * Reads the body, gathers the request's facts, and asks the decision
 * function. A refused request ends here; an allowed one moves on with its
 * decision in ctx.state.
 */
export function gate(options: GateOptions) {
  const keys = options.keys ?? staticKeys;
  const now = options.now ?? Date.now;
  return async function gateMiddleware(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    const gateState = state(ctx);
    const request = ctx.req;
    // Absolute-form or asterisk targets have no place in front of an API.
    if (!request.url?.startsWith('/')) throw new Refusal(400, 'request_target');
    const body = await readBody(request, options.bodyLimit);
    const forwardedFor = request.headers['x-forwarded-for'];
    const facts = {
      peer: request.socket.remoteAddress,
      // Node joins repeated X-Forwarded-For lines into one string.
      forwardedFor: typeof forwardedFor === 'string' ? forwardedFor : undefined,
      oinHeader: request.headersDistinct[options.oinHeader],
      body,
      authorization: request.headers.authorization,
    };
    let decision = decide(facts, options.snapshot(), options.policy, now(), keys);
    if (!decision.allowed && decision.tenant !== undefined && options.refreshKeys) {
      if (await options.refreshKeys(decision.tenant)) {
        decision = decide(facts, options.snapshot(), options.policy, now(), keys);
      }
    }
    options.metrics.decisionSeconds.observe((performance.now() - started) / 1000);
    gateState.clientIp = decision.clientIp;
    gateState.oin = decision.oin;
    if (!decision.allowed) {
      gateState.outcome = 'refused';
      gateState.reason = decision.reason;
      options.metrics.decisions.labels('refused', decision.reason).inc();
      throw new Refusal(decision.status, decision.reason);
    }
    gateState.outcome = 'allowed';
    gateState.reason = 'ok';
    options.metrics.decisions.labels('allowed', 'ok').inc();
    gateState.decision = decision;
    gateState.body = body;
    await next();
  };
}

/** Forward-auth mode: the front proxy only needs the verdict and the OIN. */
export function answerAllowed(ctx: Context): void {
  const decision = state(ctx).decision;
  if (!decision) throw new Error('answerAllowed without a decision');
  ctx.status = 200;
  ctx.set('x-authenticated-oin', decision.oin);
  ctx.body = '';
}
