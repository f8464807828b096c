/** The forward-auth baseline: bare node:http, reads the body, answers 200 with no body. */
import { createServer } from 'node:http';
import { serveHttp } from './ipc.ts';

const server = createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  });
});

serveHttp(server);
