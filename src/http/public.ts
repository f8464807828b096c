import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { answerAllowed, gate, writeRefusal, type GateOptions, type RequestState } from './gate.ts';
import type { UpstreamProxy } from './proxy.ts';
import { Refusal, type RefusalStatusCode } from './refusal.ts';
import { requestIdFor } from './request-id.ts';

/** Path without the query: the query may carry anything and never goes to the log. */
function pathOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * The public listener: one fixed chain for both modes. request id, gate
 * (body, decision), then forward (proxy mode) or 200 (forward-auth mode).
 * Nothing refused ever reaches the forwarding step. Every refusal and every
 * unexpected error leaves through the one catch below, and every request ends
 * in exactly one log line.
 *
 * Plain node:http rather than Koa: on this path Koa's per-request context
 * cost about as much as the whole decision (see README, Performance); the
 * ops listener, where routing matters and load does not, is Koa.
 */
export function publicHandler(options: GateOptions & { readonly proxy?: UpstreamProxy }): RequestListener {
  const { logger, metrics, proxy } = options;
  const gateRequest = gate(options);

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const started = performance.now();
    const state: RequestState = { requestId: requestIdFor(request.headers['x-request-id']) };
    response.setHeader('x-request-id', state.requestId);
    try {
      const decision = await gateRequest(request, state);
      if (proxy) await proxy.forward(request, response, state);
      else answerAllowed(response, decision);
    } catch (error) {
      let status: RefusalStatusCode = 500;
      if (error instanceof Refusal) {
        status = error.status;
        if (state.outcome === 'allowed') metrics.upstreamErrors.labels(error.reason).inc();
        else state.reason = error.reason;
      } else {
        state.reason = 'internal_error';
        logger.error({ requestId: state.requestId, err: error }, 'unexpected error');
      }
      if (state.outcome === undefined) {
        state.outcome = 'refused';
        metrics.decisions.labels('refused', state.reason as string).inc();
      }
      if (response.headersSent || response.destroyed) response.destroy();
      else writeRefusal(response, status, state.requestId);
    } finally {
      const clean = state.outcome === 'allowed' && state.upstreamError === undefined;
      // Building the line is skipped when its level is off (allowed requests log at info).
      if (!clean || logger.isLevelEnabled('info')) {
        logger[clean ? 'info' : 'warn'](
          {
            requestId: state.requestId,
            clientIp: state.clientIp,
            oin: state.oin,
            outcome: state.outcome ?? 'refused',
            reason: state.reason,
            status: response.statusCode,
            method: request.method,
            path: pathOf(request.url),
            ...(state.upstreamError ? { upstreamError: state.upstreamError } : {}),
            ms: Math.round((performance.now() - started) * 1000) / 1000,
          },
          'decision',
        );
      }
    }
  }

  return (request, response) => {
    void handle(request, response);
  };
}
