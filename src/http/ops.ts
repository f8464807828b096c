import Router from '@koa/router';
import Koa, { type Context, type Middleware, type Next } from 'koa';
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { parsePeerAddress } from '../ip/address.ts';
import { parseCidrList } from '../ip/cidr.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Logger } from '../observe/logger.ts';
import type { SnapshotHolder } from '../store/holder.ts';
import { ERROR_CODES, refusalBody, type RefusalStatusCode } from './refusal.ts';
import { requestIdFor } from './request-id.ts';

export interface OpsOptions {
  readonly holder: SnapshotHolder;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly adminToken: string | undefined;
  /** Host names (lower case) the listener answers to besides IP literals and localhost. */
  readonly adminHosts: readonly string[];
  /** True from SIGTERM on: /readyz answers 503 so that load balancers stop sending. */
  readonly stopping?: () => boolean;
}

/** Largest JSON body an ops POST route parses (and what the listener lets through `100 Continue`). */
export const OPS_BODY_LIMIT = 64 * 1024;

// host[:port] with host an IPv4 literal, a bracketed IPv6 literal, or a name.
const HOST_HEADER = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+))(?::[0-9]{1,5})?$/;

/**
 * DNS rebinding: a web page's script can reach this listener under the
 * page's own host name, never under an IP literal or a name the operator
 * listed, so those are all that is answered.
 */
export function hostAllowed(host: string | undefined, adminHosts: ReadonlySet<string>): boolean {
  const match = HOST_HEADER.exec(host ?? '');
  if (!match) return false;
  if (match[1] !== undefined) return isIPv6(match[1]);
  const name = (match[2] as string).toLowerCase();
  return isIPv4(name) || name === 'localhost' || adminHosts.has(name);
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

function answerRefusal(ctx: Context, status: RefusalStatusCode): void {
  ctx.status = status;
  ctx.type = 'application/json';
  if (status === 401) ctx.set('www-authenticate', 'Bearer');
  ctx.body = refusalBody(status, ctx.state.requestId as string);
}

/** A status a body parser (co-body) threw that the contract has a code for, else undefined. */
function clientErrorStatus(error: unknown): RefusalStatusCode | undefined {
  const status = (error as { status?: unknown; expose?: unknown }).status;
  return typeof status === 'number' && status >= 400 && status < 500 && status in ERROR_CODES
    ? (status as RefusalStatusCode)
    : undefined;
}

let jsonParser: Promise<Middleware> | undefined;

/**
 * The ops listener's JSON body parser (koa-body, with formidable: some
 * 200 ms to import), loaded once. `oingate serve` asks for it while the first
 * whitelist loads, before the listeners open: importing it later, at the
 * first POST, would pause every request on the loop for that long (measured:
 * 57 and 157 ms). A missing package fails start-up, or that request (500).
 */
export function jsonBodyParser(): Promise<Middleware> {
  jsonParser ??= import('koa-body').then(({ HttpMethodEnum, koaBody }) =>
    koaBody({
      json: true,
      jsonStrict: true,
      jsonLimit: OPS_BODY_LIMIT,
      urlencoded: false,
      text: false,
      multipart: false,
      parsedMethods: [HttpMethodEnum.POST],
    }),
  );
  // A failed import is tried again by the next caller, not remembered.
  jsonParser.catch(() => (jsonParser = undefined));
  return jsonParser;
}

/** The ops listener: health, readiness, reload, metrics. */
export function opsApp(options: OpsOptions): Koa {
  const { holder, metrics, logger } = options;
  const expected = options.adminToken === undefined ? undefined : digest(options.adminToken);
  const adminHosts = new Set(options.adminHosts);
  const app = new Koa({ proxy: false });
  const router = new Router();

  /**
   * Who may call the POST routes: the admin token when one is set, else a
   * loopback peer whose request no browser sent (a cross-site form carries
   * an Origin header). Checked before the body is read.
   */
  const authorize = async (ctx: Context, next: Next): Promise<void> => {
    const allowed = expected
      ? tokenMatches(ctx.req.headers.authorization, expected)
      : isLoopback(ctx.req.socket.remoteAddress) && ctx.req.headers.origin === undefined;
    if (!allowed) {
      logger.warn(
        { requestId: ctx.state.requestId, peer: ctx.req.socket.remoteAddress, origin: ctx.req.headers.origin?.slice(0, 128), path: ctx.path },
        'admin request refused',
      );
      answerRefusal(ctx, expected ? 401 : 403);
      return;
    }
    await next();
  };
  // JSON only, strict (an object or array at the top), small: for the POST
  // routes that take a body. A body of another type is left unparsed.
  const parseJson = async (ctx: Context, next: Next): Promise<void> => {
    await (await jsonBodyParser())(ctx, next);
  };

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', (ctx) => {
    const readiness = holder.readiness();
    if (options.stopping?.()) {
      ctx.status = 503;
      ctx.body = { ...readiness, ready: false, stopping: true };
      return;
    }
    ctx.status = readiness.ready ? 200 : 503;
    ctx.body = readiness;
  });

  // The body, if any, is parsed (so a malformed JSON one is refused) and not used.
  router.post('/reload', authorize, parseJson, async (ctx: Context) => {
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
    if (!hostAllowed(ctx.req.headers.host, adminHosts)) {
      logger.warn({ requestId: ctx.state.requestId, peer: ctx.req.socket.remoteAddress, host: ctx.req.headers.host?.slice(0, 128) }, 'ops request for another host refused');
      ctx.set('connection', 'close');
      answerRefusal(ctx, 421);
      return;
    }
    try {
      await next();
    } catch (error) {
      const status = clientErrorStatus(error);
      if (status === undefined) logger.error({ err: error, requestId: ctx.state.requestId }, 'ops error');
      else logger.warn({ requestId: ctx.state.requestId, reason: (error as Error).message }, 'ops request body refused');
      answerRefusal(ctx, status ?? 500);
    }
    if (ctx.status === 404 && ctx.body === undefined) answerRefusal(ctx, 404);
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  app.silent = true;
  return app;
}
