/**
 * The forward-auth baseline for a Koa service: a bare Koa app that parses
 * the JSON body (koa-body, JSON only) and answers 200 with no body. It does
 * what any Koa API does before its own code runs, and nothing else.
 */
import { createServer } from 'node:http';
import Koa from 'koa';
import { koaBody } from 'koa-body';
import { serveHttp } from './ipc.ts';

const app = new Koa();
app.use(koaBody({ json: true, urlencoded: false, text: false, multipart: false, jsonLimit: '1mb' }));
app.use((ctx) => {
  // Touch the parsed body so the parse cannot be skipped as dead work.
  if (typeof (ctx.request.body as { oin?: unknown } | undefined)?.oin !== 'string') ctx.throw(400);
  ctx.status = 200;
  ctx.body = '';
});

serveHttp(createServer(app.callback()));
