import Koa from 'koa';
import { answerAllowed, gate, respond, type GateOptions } from './gate.ts';
import { Refusal } from './refusal.ts';
import type { UpstreamProxy } from './proxy.ts';

/**
 * The public listener: one fixed chain for both modes. Proxy mode forwards
 * what the gate allowed; forward-auth mode answers 200. Nothing refused ever
 * reaches the forwarding step.
 */
export function publicApp(options: GateOptions & { readonly proxy?: UpstreamProxy }): Koa {
  // proxy: false: Koa must never believe X-Forwarded-For on its own.
  const app = new Koa({ proxy: false });
  app.use(respond(options));
  app.use(gate(options));
  const proxy = options.proxy;
  if (proxy) {
    app.use(async (ctx) => {
      try {
        await proxy.forward(ctx);
      } catch (error) {
        if (error instanceof Refusal) options.metrics.upstreamErrors.labels(error.reason).inc();
        throw error;
      }
    });
  } else {
    app.use(async (ctx) => answerAllowed(ctx));
  }
  // Errors are all handled in respond(); keep Koa from printing to stderr.
  app.silent = true;
  return app;
}
