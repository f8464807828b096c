/** The upstream behind both proxies: bare node:http, reads the body, answers 200 with a small JSON body. */
import { createServer } from 'node:http';
import { serveHttp } from './ipc.ts';

const body = Buffer.from(JSON.stringify({ ok: true, from: 'bench-upstream' }));

const server = createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
// Longer than nginx's and undici's idle timeouts, so a proxy never reuses a
// connection the upstream is just closing (a POST is not retried: 502).
server.keepAliveTimeout = 120_000;

serveHttp(server);
