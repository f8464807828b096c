/**
 * The child side of the bench's IPC: announce readiness, answer requests,
 * stop on request (process.exit, so --cpu-prof writes its profile), and stop
 * when the bench goes away.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

type Handler = () => unknown;

export function announce(message: Record<string, unknown>): void {
  if (!process.send) throw new Error('bench servers are started by test/bench/run.ts (they need an IPC channel)');
  process.send({ type: 'ready', ...message });
}

export function serve(handlers: Record<string, Handler>, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 10_000);
    force.unref();
    void stop()
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  process.on('message', (message: { type?: string; id?: number; op?: string }) => {
    if (message.type === 'stop') shutdown();
    if (message.type !== 'request') return;
    const handler = message.op === undefined ? undefined : handlers[message.op];
    void Promise.resolve()
      .then(() => (handler ? handler() : { error: `unknown op ${message.op}` }))
      .then(
        (value) => process.send?.({ type: 'reply', id: message.id, value }),
        (error: Error) => process.send?.({ type: 'reply', id: message.id, error: error.message }),
      );
  });
  process.on('SIGTERM', shutdown);
  process.on('disconnect', shutdown);
}

/** For the plain servers: listen on a loopback port, announce it, and close on stop. */
export function serveHttp(server: Server): void {
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    announce({ url: `http://127.0.0.1:${port}`, sinceProcessStartMs: performance.now() });
  });
  serve({}, () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
}
