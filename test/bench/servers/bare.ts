/** The forward-auth baseline: bare node:http, reads the body, answers 200 with no body. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { announce, serve } from './ipc.ts';

const server = createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  announce({ url: `http://127.0.0.1:${port}`, sinceProcessStartMs: performance.now() });
});

serve({}, () => new Promise<void>((resolve) => {
  server.close(() => resolve());
  server.closeAllConnections();
}));
