import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import { createHash, timingSafeEqual } from 'node:crypto';
import { parsePeerAddress } from '../ip/address.ts';
import { parseCidrList } from '../ip/cidr.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Logger } from '../observe/logger.ts';
import type { SnapshotHolder } from '../store/holder.ts';
import { refusalBody } from './refusal.ts';
import { requestIdFor } from './request-id.ts';

export interface OpsOptions {
  readonly holder: SnapshotHolder;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly adminToken: string | undefined;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Compares in constant time whatever the lengths: both sides are hashed first. */
function tokenMatches(authorization: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer ([\x21-\x7e]+)$/i.exec(authorization ?? '');
  const given = digest(match?.[1] ?? '');
  return timingSafeEqual(given, expected) && match !== null;
}

const LOOPBACK = parseCidrList(['127.0.0.0/8', '::1/128']);

/** The same address parsing as the gate: IPv4-mapped peers count as IPv4. */
function isLoopback(peer: string | undefined): boolean {
  const address = peer === undefined ? undefined : parsePeerAddress(peer);
  return address !== undefined && LOOPBACK.contains(address);
}

/** The ops listener: health, readiness, reload, metrics. */
export function opsApp(options: OpsOptions): Koa {
  const { holder, metrics, logger } = options;
  const expected = options.adminToken === undefined ? undefined : digest(options.adminToken);
  const app = new Koa({ proxy: false });
  const router = new Router();

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', (ctx) => {
    const readiness = holder.readiness();
    ctx.status = readiness.ready ? 200 : 503;
    ctx.body = readiness;
  });

  router.post('/reload', async (ctx: Context) => {
    const allowed = expected
      ? tokenMatches(ctx.req.headers.authorization, expected)
      : isLoopback(ctx.req.socket.remoteAddress);
    if (!allowed) {
      const status = expected ? 401 : 403;
      logger.warn({ requestId: ctx.state.requestId, peer: ctx.req.socket.remoteAddress }, 'reload refused');
      ctx.status = status;
      ctx.type = 'application/json';
      if (status === 401) ctx.set('www-authenticate', 'Bearer');
      ctx.body = refusalBody(status, ctx.state.requestId as string);
      return;
    }
    const outcome = await holder.reload();
    ctx.status = outcome.ok ? 200 : 422;
    ctx.body = holder.readiness();
  });

  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  app.use(async (ctx, next) => {
    ctx.state.requestId = requestIdFor(ctx.req.headers['x-request-id']);
    ctx.set('x-request-id', ctx.state.requestId as string);
    try {
      await next();
    } catch (error) {
      logger.error({ err: error, requestId: ctx.state.requestId }, 'ops error');
      ctx.status = 500;
      ctx.type = 'application/json';
      ctx.body = refusalBody(500, ctx.state.requestId as string);
    }
    if (ctx.status === 404 && ctx.body === undefined) {
      ctx.status = 404;
      ctx.type = 'application/json';
      ctx.body = refusalBody(404, ctx.state.requestId as string);
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  app.silent = true;
  return app;
}
