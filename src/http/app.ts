import Koa, { type Context } from 'koa';
import type { GateOptions } from './gate.ts';
import { gateMiddleware, requestStateOf } from './middleware.ts';
import type { UpstreamProxy } from './proxy.ts';

/** Forward-auth mode: the front proxy needs only the verdict, the OIN and the forwarded claims. */
function answerAllowed(ctx: Context): void {
  const state = requestStateOf(ctx);
  ctx.respond = false;
  const res = ctx.res;
  res.statusCode = 200;
  res.setHeader('x-authenticated-oin', state.decision?.oin ?? '');
  const extra = state.extraHeaders;
  if (extra !== undefined) for (let i = 0; i < extra.length; i += 2) res.setHeader(extra[i] as string, extra[i + 1] as string);
  // Without a body, end() writes Content-Length: 0 itself (one header less to validate).
  res.end();
}

/** Proxy mode: the exact request goes on; the upstream's answer streams back past Koa. */
function forwardTo(proxy: UpstreamProxy): (ctx: Context) => Promise<void> {
  return (ctx) => {
    ctx.respond = false;
    return proxy.forward(ctx.req, ctx.res, requestStateOf(ctx));
  };
}

/**
 * The public listener: the gate middleware, then the forwarding step (proxy
 * mode) or the 200 answer (forward-auth mode). The same middleware an API
 * mounts itself, so the service and an embedding API decide identically.
 * app.proxy stays false: the gate resolves the client IP itself, from
 * OINGATE_TRUSTED_PROXIES only.
 */
export function publicApp(options: GateOptions & { readonly proxy?: UpstreamProxy }): Koa {
  const app = new Koa({ proxy: false });
  app.silent = true;
  // Forward-auth: the log names the request the front proxy asks about, not its GET /check.
  app.use(gateMiddleware(options.proxy ? options : { ...options, logOriginalRequest: true }));
  app.use(options.proxy ? forwardTo(options.proxy) : answerAllowed);
  return app;
}
