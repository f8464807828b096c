/**
 * Test harness: a real oingate on loopback ports, fed from a real whitelist
 * file in a temporary directory, with its decision log captured.
 */
import jwt from 'jsonwebtoken';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import Koa from 'koa';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGate, type Gate as EmbeddedGate } from '../../src/index.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { startService, type Service } from '../../src/service.ts';
import type { FileSourceOptions } from '../../src/store/file.ts';
import { loadSettings } from '../../src/settings.ts';

export const OIN_A = '00000001000000000001';
export const OIN_B = '00000001000000000002';
export const SECRET_A = 'tenant-a-secret-0123456789abcdefghijkl';
export const SECRET_B = 'tenant-b-secret-0123456789abcdefghijkl';

export interface TenantSpec {
  oin: string;
  name?: string;
  enabled?: boolean;
  cidrs: string[];
  keys?: Array<Record<string, unknown>>;
  jwksUri?: string;
  rateLimit?: { perSecond?: unknown; burst?: unknown } | null;
}

/** Two tenants, both allowed from loopback, each with its own HS256 key. */
export function twoTenants(): TenantSpec[] {
  return [
    { oin: OIN_A, name: 'A', cidrs: ['127.0.0.0/8', '::1/128'], keys: [{ kid: 'a1', alg: 'HS256', secret: SECRET_A }] },
    { oin: OIN_B, name: 'B', cidrs: ['127.0.0.0/8', '::1/128'], keys: [{ kid: 'b1', alg: 'HS256', secret: SECRET_B }] },
  ];
}

export function signToken(
  claims: Record<string, unknown>,
  secret: string = SECRET_A,
  options: jwt.SignOptions = { algorithm: 'HS256', keyid: 'a1' },
): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ iat: now, exp: now + 600, ...claims }, secret, options);
}

export function tokenFor(oin: string = OIN_A): string {
  return oin === OIN_B ? signToken({ oin }, SECRET_B, { algorithm: 'HS256', keyid: 'b1' }) : signToken({ oin });
}

export class LogCapture {
  readonly lines: Array<Record<string, unknown>> = [];
  write(line: string): void {
    this.lines.push(JSON.parse(line) as Record<string, unknown>);
  }
  decisions(): Array<Record<string, unknown>> {
    return this.lines.filter((line) => line['msg'] === 'decision');
  }
  last(): Record<string, unknown> | undefined {
    return this.decisions().at(-1);
  }
}

export interface Gate {
  readonly service: Service;
  readonly url: string;
  readonly adminUrl: string;
  readonly dir: string;
  readonly file: string;
  readonly logs: LogCapture;
  /** Replaces the whitelist file atomically (write + rename), like an editor. */
  writeWhitelist(tenants: TenantSpec[] | string): Promise<void>;
  close(): Promise<void>;
}

export interface GateOptions {
  /** One more CA (PEM) the service trusts for JWKS endpoints. */
  jwksCa?: string;
  /** Smallest interval between unknown-kid JWKS refetches of one tenant. */
  jwksRefetchIntervalMs?: number;
  /** Over the harness's quick debounce and poll (e.g. when files go to the reading thread). */
  fileOptions?: FileSourceOptions;
}

export async function writeWhitelistFile(file: string, tenants: TenantSpec[] | string): Promise<void> {
  const text = typeof tenants === 'string' ? tenants : JSON.stringify({ tenants }, null, 2);
  const temporary = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
}

/**
 * Starts oingate with the given tenants in a fresh whitelist file. `env`
 * holds extra OINGATE_* settings; listeners default to loopback port 0.
 * Pass `tenants: null` to start without a file. `options` reach the
 * service: a CA to trust for JWKS endpoints, a shorter unknown-kid refetch
 * interval.
 */
export async function startGate(
  tenants: TenantSpec[] | string | null = twoTenants(),
  env: Record<string, string> = {},
  options: GateOptions = {},
): Promise<Gate> {
  const dir = await mkdtemp(join(tmpdir(), 'oingate-test-'));
  const file = join(dir, 'whitelist.json');
  if (tenants !== null) await writeWhitelistFile(file, tenants);
  const settings = loadSettings({
    OINGATE_LISTEN: '127.0.0.1:0',
    OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
    OINGATE_STORE: `file:${file}`,
    OINGATE_LOG_LEVEL: 'info',
    ...env,
  });
  const logs = new LogCapture();
  const service = await startService(settings, {
    logger: createLogger(settings.logLevel, logs),
    fileOptions: { debounceMs: 50, pollMs: 250, ...options.fileOptions },
    ...(options.jwksCa !== undefined ? { jwksCa: options.jwksCa } : {}),
    ...(options.jwksRefetchIntervalMs !== undefined ? { jwksRefetchIntervalMs: options.jwksRefetchIntervalMs } : {}),
  });
  return {
    service,
    url: service.publicUrl,
    adminUrl: service.adminUrl,
    dir,
    file,
    logs,
    writeWhitelist: (next) => writeWhitelistFile(file, next),
    async close() {
      await service.close(1_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json(): Record<string, unknown>;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Source address of the connection, e.g. 127.0.0.2, to appear as another client. */
  localAddress?: string;
}

/** Reads a whole response into a Response (also for the HTTPS client of the TLS tests). */
export function collectResponse(res: IncomingMessage, resolve: (response: Response) => void, reject: (error: Error) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
  });
  res.on('error', reject);
}

/** A plain node:http request: no header rewriting, exact bytes. */
export function send(baseUrl: string, options: RequestOptions = {}): Promise<Response> {
  const url = new URL(options.path ?? '/api', baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        method: options.method ?? 'POST',
        path: options.path ?? '/api',
        headers: options.headers ?? {},
        agent: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      (res) => collectResponse(res, resolve, reject),
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** A JSON POST carrying the OIN in the body and a bearer token. */
export function call(
  baseUrl: string,
  body: unknown,
  token: string | undefined,
  extra: RequestOptions = {},
): Promise<Response> {
  const headers: Record<string, string | string[]> = { 'content-type': 'application/json', ...(extra.headers ?? {}) };
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  return send(baseUrl, { ...extra, headers, body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });
}

/** Polls until `check` passes or the time is up; returns how long it took. */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 5_000, intervalMs = 25): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await check();
      return Date.now() - started;
    } catch (error) {
      if (Date.now() - started > timeoutMs) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

export interface EmbeddedApp {
  readonly gate: EmbeddedGate;
  readonly url: string;
  readonly file: string;
  readonly logs: LogCapture;
  /** What the API's own handler saw, one entry per request that reached it. */
  readonly hits: Array<{ state: unknown; body: unknown; rawBody: Buffer | undefined; path: string }>;
  writeWhitelist(tenants: TenantSpec[] | string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A Koa API embedding the gate in its own process, as the README shows:
 * createGate(options), app.use(gate.middleware), then the API's handler,
 * which answers 200 with what it saw. `options` are createGate's options.
 */
export async function startEmbedded(tenants: TenantSpec[] | null = twoTenants(), options: Record<string, unknown> = {}): Promise<EmbeddedApp> {
  const dir = await mkdtemp(join(tmpdir(), 'oingate-embed-'));
  const file = join(dir, 'whitelist.json');
  if (tenants !== null) await writeWhitelistFile(file, tenants);
  const logs = new LogCapture();
  const gate = await createGate({ store: `file:${file}`, logger: createLogger('info', logs), ...options });
  const hits: EmbeddedApp['hits'] = [];
  const app = new Koa();
  app.silent = true;
  app.use(gate.middleware);
  app.use((ctx) => {
    const request = ctx.request as unknown as { body: unknown; rawBody: Buffer | undefined };
    hits.push({ state: ctx.state['oingate'], body: request.body, rawBody: request.rawBody, path: ctx.path });
    ctx.set('x-authenticated-oin', (ctx.state['oingate'] as { oin: string }).oin);
    ctx.body = { ok: true };
  });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    gate,
    url: `http://127.0.0.1:${port}`,
    file,
    logs,
    hits,
    writeWhitelist: (next) => writeWhitelistFile(file, next),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await gate.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
