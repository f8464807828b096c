/**
 * Test harness for JWKS: a real local identity-provider endpoint (plain HTTP
 * on loopback, or HTTPS with a self-signed certificate whose PEM the tests
 * pass as the CA to trust), and key pairs published as JWKs.
 */
import jwt from 'jsonwebtoken';
import { generateKeyPairSync, randomBytes, type JsonWebKey, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body in chunks without a content-length. */
  chunked?: boolean;
  /** Never answer (for timeouts). */
  hang?: boolean;
}

export type Route = Reply | ((req: IncomingMessage) => Reply);

export interface JwksServer {
  /** e.g. http://127.0.0.1:41234 */
  readonly base: string;
  /** The absolute URL of `path`. */
  uri(path?: string): string;
  /** Sets what `path` answers; a JWK Set object is served as JSON. */
  route(path: string, reply: Route | { keys: unknown[] }): void;
  /** Serves `{ keys }` at `path`. */
  publish(path: string, keys: unknown[]): void;
  /** Requests seen for `path` so far. */
  hits(path?: string): number;
  /** Client connections open now. */
  openConnections(): number;
  close(): Promise<void>;
}

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
}

let certificate: Promise<TlsMaterial> | undefined;

/** One self-signed certificate for localhost and 127.0.0.1, made once per test run. */
export function testCertificate(): Promise<TlsMaterial> {
  certificate ??= (async () => {
    const selfsigned = await import('selfsigned');
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      algorithm: 'sha256',
      notAfterDate: new Date(Date.now() + 24 * 3600 * 1000),
      extensions: [
        { name: 'basicConstraints', cA: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
          ],
        },
      ],
    });
    return { key: pems.private, cert: pems.cert };
  })();
  return certificate;
}

function isKeySet(value: Route | { keys: unknown[] }): value is { keys: unknown[] } {
  return typeof value === 'object' && value !== null && Array.isArray((value as { keys?: unknown }).keys);
}

/** Starts an endpoint on 127.0.0.1; HTTPS when `tls` is given. Unknown paths answer 404. */
export async function startJwksServer(tls?: TlsMaterial): Promise<JwksServer> {
  const routes = new Map<string, Route>();
  const counts = new Map<string, number>();
  const sockets = new Set<Socket>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const route = routes.get(path);
    const reply: Reply = route === undefined ? { status: 404, body: 'not found' } : typeof route === 'function' ? route(req) : route;
    if (reply.hang) return;
    const body = reply.body === undefined ? Buffer.alloc(0) : Buffer.from(reply.body);
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(reply.headers ?? {}) };
    if (reply.chunked) {
      res.writeHead(reply.status ?? 200, headers);
      for (let offset = 0; offset < body.length; offset += 1024) res.write(body.subarray(offset, offset + 1024));
      res.end();
      return;
    }
    res.writeHead(reply.status ?? 200, { ...headers, 'content-length': String(body.length) });
    res.end(body);
  };
  const server: Server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }, handler) : createHttpServer(handler);
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // A failed TLS handshake (an untrusting client) is expected in some tests.
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    base,
    uri: (path = '/jwks') => `${base}${path}`,
    route(path, reply) {
      routes.set(path, isKeySet(reply) ? { body: JSON.stringify(reply) } : reply);
    },
    publish(path, keys) {
      routes.set(path, { body: JSON.stringify({ keys }) });
    },
    hits: (path = '/jwks') => counts.get(path) ?? 0,
    openConnections: () => sockets.size,
    close() {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections?.();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type AsymmetricAlg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

export interface TestKey {
  readonly kid: string;
  readonly alg: AsymmetricAlg;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public JWK with kid, alg and use=sig, as an IdP publishes it. */
  readonly jwk: JsonWebKey & { kid: string; alg: string; use: string };
}

const CURVES: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

/** A fresh key pair for `alg`, with its public JWK. */
export function testKey(kid: string, alg: AsymmetricAlg = 'RS256', modulusLength = 2048): TestKey {
  const pair = alg.startsWith('ES')
    ? generateKeyPairSync('ec', { namedCurve: CURVES[alg] as string })
    : generateKeyPairSync('rsa', { modulusLength });
  const exported = pair.publicKey.export({ format: 'jwk' });
  return { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk: { ...exported, kid, alg, use: 'sig' } };
}

/** A token signed by `key`, with its kid, valid for 10 minutes. */
export function signWith(key: TestKey, claims: Record<string, unknown>, kid: string | undefined = key.kid): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ iat: now, exp: now + 600, ...claims }, key.privateKey, {
    algorithm: key.alg,
    ...(kid !== undefined ? { keyid: kid } : {}),
  });
}

function base64urlOf(value: bigint): string {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  return Buffer.from(hex, 'hex').toString('base64url');
}

/**
 * The public members of an RSA JWK with a modulus of exactly `bits` bits
 * (random and odd: node:crypto builds a public key from any such number,
 * no key pair needed, so even a 16384-bit "key" costs nothing to make) and
 * the public exponent `e`, or n - 2 for `'n-2'`.
 */
export function rsaPublicJwk(bits: number, e: bigint | 'n-2' = 65537n): { kty: 'RSA'; n: string; e: string } {
  const bytes = randomBytes(Math.ceil(bits / 8));
  let n = BigInt(`0x${bytes.toString('hex')}`);
  n &= (1n << BigInt(bits)) - 1n;
  n |= (1n << BigInt(bits - 1)) | 1n;
  return { kty: 'RSA', n: base64urlOf(n), e: base64urlOf(e === 'n-2' ? n - 2n : e) };
}
