import type { IncomingMessage, ServerResponse } from 'node:http';
import { decide, staticKeys, type Decision, type DecisionPolicy, type KeyLookup, type RequestFacts } from '../decision.ts';
import type { Snapshot, Tenant } from '../model/snapshot.ts';
import type { Logger } from '../observe/logger.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { VerifiedTokenCache } from '../token/cache.ts';
import { readBody } from './body.ts';
import { Refusal, refusalBody, type RefusalStatusCode } from './refusal.ts';

/** What the gate needs; the same for proxy and forward-auth modes. */
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
  readonly tokenCache?: VerifiedTokenCache;
}

/** One request's facts for its log line, filled in as the request goes. */
export interface RequestState {
  readonly requestId: string;
  decision?: Decision & { allowed: true };
  body?: Buffer | undefined;
  clientIp?: string | undefined;
  oin?: string | undefined;
  outcome?: 'allowed' | 'refused';
  reason?: string;
  upstreamError?: string;
}

/** Every value of one header, from the raw lines (cheaper than headersDistinct, which copies all). */
function headerLines(request: IncomingMessage, name: string): string[] | undefined {
  let values: string[] | undefined;
  const raw = request.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const field = raw[i] as string;
    if (field.length === name.length && field.toLowerCase() === name) (values ??= []).push(raw[i + 1] as string);
  }
  return values;
}

/**
 * Reads the body, gathers the request's facts and asks the decision
 * function. Returns the allowed decision, or throws the Refusal.
 */
export function gate(options: GateOptions): (request: IncomingMessage, state: RequestState) => Promise<Decision & { allowed: true }> {
  const keys = options.keys ?? staticKeys;
  const now = options.now ?? Date.now;
  const { metrics, policy } = options;
  return async function gateRequest(request, state) {
    const started = performance.now();
    // Absolute-form or asterisk targets have no place in front of an API.
    if (request.url?.charCodeAt(0) !== 0x2f) throw new Refusal(400, 'request_target');
    const body = await readBody(request, options.bodyLimit);
    const forwardedFor = request.headers['x-forwarded-for'];
    const facts: RequestFacts = {
      peer: request.socket.remoteAddress,
      // Node joins repeated X-Forwarded-For lines into one string.
      forwardedFor: typeof forwardedFor === 'string' ? forwardedFor : undefined,
      oinHeader: headerLines(request, options.oinHeader),
      body,
      authorization: request.headers.authorization,
    };
    let decision = decide(facts, options.snapshot(), policy, now(), keys, options.tokenCache);
    if (!decision.allowed && decision.tenant !== undefined && options.refreshKeys) {
      if (await options.refreshKeys(decision.tenant)) {
        decision = decide(facts, options.snapshot(), policy, now(), keys, options.tokenCache);
      }
    }
    metrics.decisionSeconds.observe((performance.now() - started) / 1000);
    state.clientIp = decision.clientIp;
    state.oin = decision.oin;
    if (!decision.allowed) {
      state.outcome = 'refused';
      state.reason = decision.reason;
      metrics.decisions.labels('refused', decision.reason).inc();
      throw new Refusal(decision.status, decision.reason);
    }
    state.outcome = 'allowed';
    state.reason = 'ok';
    metrics.allowed.inc();
    state.decision = decision;
    state.body = body;
    return decision;
  };
}

export function writeRefusal(response: ServerResponse, status: RefusalStatusCode, requestId: string): void {
  const body = refusalBody(status, requestId);
  response.statusCode = status;
  response.setHeader('content-type', 'application/json; charset=utf-8');
  response.setHeader('content-length', Buffer.byteLength(body));
  if (status === 401) response.setHeader('www-authenticate', 'Bearer');
  // An unread body may still be arriving; do not try to reuse the connection.
  if (status === 413 || status === 415) response.setHeader('connection', 'close');
  response.end(body);
}

/** Forward-auth mode: the front proxy only needs the verdict and the OIN. */
export function answerAllowed(response: ServerResponse, decision: Decision & { allowed: true }): void {
  response.statusCode = 200;
  response.setHeader('x-authenticated-oin', decision.oin);
  response.setHeader('content-length', 0);
  response.end();
}
