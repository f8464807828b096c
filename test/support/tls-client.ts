/**
 * A real HTTPS client for the mutual-TLS tests: node:https, optionally with
 * a client certificate, a new connection per request unless an agent is
 * given (keep-alive).
 */
import { Agent, request } from 'node:https';
import { collectResponse, type Response } from './gate.ts';
import type { Issued } from './pki.ts';

export type TlsAnswer = Response;

export interface TlsCallOptions {
  /** The CA that issued the server certificate. */
  readonly ca: string;
  /** The client certificate to present; none when unset. */
  readonly client?: Issued;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly method?: string;
  readonly path?: string;
  readonly agent?: Agent;
  readonly localAddress?: string;
}

export function tlsCall(baseUrl: string, options: TlsCallOptions): Promise<TlsAnswer> {
  const url = new URL(options.path ?? '/api', baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? 'POST',
        path: url.pathname,
        headers: { ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
        ca: options.ca,
        servername: 'localhost',
        ...(options.client ? { cert: options.client.cert, key: options.client.key } : {}),
        ...(options.agent ? { agent: options.agent } : { agent: false }),
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      (res) => collectResponse(res, resolve, reject),
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** A keep-alive agent presenting `client` (or no certificate). */
export function tlsAgent(ca: string, client?: Issued): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1, ca, servername: 'localhost', ...(client ? { cert: client.cert, key: client.key } : {}) });
}
