/**
 * The gate embedded in a Koa API (contract §8), over real sockets: what an
 * allowed request carries into the API's handler, that a refusal never gets
 * there, and the gate's own lifecycle (options, readiness, reload, close).
 */
import { expect } from 'chai';
import Koa from 'koa';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { createGate } from '../../src/index.ts';
import { SettingsError } from '../../src/settings.ts';
import {
  call,
  eventually,
  OIN_A,
  OIN_B,
  SECRET_A,
  send,
  signToken,
  startEmbedded,
  tokenFor,
  twoTenants,
  type EmbeddedApp,
} from '../support/gate.ts';

describe('the gate embedded in a Koa API', () => {
  let api: EmbeddedApp;
  before(async () => {
    api = await startEmbedded();
  });
  after(() => api?.close());
  beforeEach(() => {
    api.hits.length = 0;
  });

  it('hands an allowed request on with ctx.state.oingate, the parsed body and the exact body bytes', async () => {
    // Whitespace, an escape and non-ASCII: a re-serialised body would differ.
    const raw = Buffer.from(`{ "oin" : "${OIN_A}",\n "name": "Gemeente S\u00fadwest", "esc": "\\u00e9" }`, 'utf8');
    const token = tokenFor(OIN_A);
    const res = await send(api.url, { headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: raw });
    expect(res.status, res.text).to.equal(200);
    expect(res.json()).to.deep.equal({ ok: true });
    expect(res.headers['x-request-id']).to.be.a('string').and.not.equal('');
    expect(api.hits).to.have.length(1);
    const hit = api.hits[0]!;
    expect(hit.state).to.deep.include({ oin: OIN_A, clientIp: '127.0.0.1', kid: 'a1' });
    expect((hit.state as { claims: Record<string, unknown> }).claims).to.include({ oin: OIN_A });
    expect(hit.body).to.deep.equal({ oin: OIN_A, name: 'Gemeente S\u00fadwest', esc: '\u00e9' });
    expect(Buffer.isBuffer(hit.rawBody)).to.equal(true);
    expect(hit.rawBody?.equals(raw)).to.equal(true);
    expect(api.logs.last()).to.include({ outcome: 'allowed', reason: 'ok', status: 200, oin: OIN_A, kid: 'a1', peer: '127.0.0.1' });
  });

  it('leaves body and rawBody undefined for a request without a body', async () => {
    const res = await send(api.url, { method: 'GET', headers: { 'x-oin': OIN_B, authorization: `Bearer ${tokenFor(OIN_B)}` } });
    expect(res.status).to.equal(200);
    expect(api.hits[0]?.body).to.equal(undefined);
    expect(api.hits[0]?.rawBody).to.equal(undefined);
    expect(api.hits[0]?.state).to.deep.include({ oin: OIN_B, kid: 'b1' });
  });

  it('answers every refusal itself in the contract shape and never calls the handler', async () => {
    const cases: Array<[number, string, () => Promise<{ status: number; headers: Record<string, unknown>; json(): Record<string, unknown> }>]> = [
      [400, 'bad_request', () => call(api.url, '{"oin":', tokenFor(OIN_A))],
      [400, 'bad_request', () => call(api.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-oin': OIN_B } })],
      [401, 'unauthorized', () => call(api.url, { oin: OIN_A }, undefined)],
      [401, 'unauthorized', () => call(api.url, { oin: OIN_B }, tokenFor(OIN_A))],
      [403, 'forbidden', () => call(api.url, { oin: '00000001000000000099' }, tokenFor(OIN_A))],
      [415, 'unsupported_media_type', () => call(api.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'content-type': 'text/plain' } })],
    ];
    for (const [status, error, request] of cases) {
      const res = await request();
      expect(res.status).to.equal(status);
      const body = res.json();
      expect(body['error']).to.equal(error);
      expect(body['requestId']).to.equal(res.headers['x-request-id']);
      expect(res.headers['content-type']).to.match(/^application\/json/);
      expect(res.headers['www-authenticate']).to.equal(status === 401 ? 'Bearer' : undefined);
      expect(res.headers['x-authenticated-oin']).to.equal(undefined);
    }
    expect(api.hits, 'the handler was never called').to.have.length(0);
  });

  it('refuses a client outside every tenant\'s ranges at once, without reading its body', async () => {
    const narrow = await startEmbedded([{ oin: OIN_A, cidrs: ['127.0.0.1/32'], keys: [{ kid: 'a1', alg: 'HS256', secret: SECRET_A }] }]);
    try {
      const { port } = new URL(narrow.url);
      // Headers announcing a body that never comes: a gate that waited for it would time out.
      const started = Date.now();
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: Number(port), localAddress: '127.0.0.3' });
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
          if (text.includes('\r\n\r\n') && text.includes('}')) resolve(text);
        });
        socket.on('error', reject);
        socket.on('close', () => resolve(text));
        socket.write(`POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nx-oin: ${OIN_A}\r\n\r\n{"oin"`);
        setTimeout(() => socket.destroy(), 3_000).unref();
      });
      expect(answer).to.match(/^HTTP\/1\.1 403 /);
      expect(answer.toLowerCase()).to.include('connection: close');
      expect(Date.now() - started).to.be.below(2_000);
      expect(narrow.hits).to.have.length(0);
      expect(narrow.logs.last()).to.include({ reason: 'ip_no_tenant', clientIp: '127.0.0.3', oinHeader: OIN_A });
    } finally {
      await narrow.close();
    }
  });

  it('lets middleware mounted before the gate add headers to a refusal after next()', async () => {
    const gate = await createGate({ store: `file:${api.file}`, logLevel: 'silent' });
    const app = new Koa();
    app.use(async (ctx, next) => {
      await next();
      ctx.set('x-api', 'seen');
    });
    app.use(gate.middleware);
    app.use((ctx) => {
      ctx.body = 'reached';
    });
    const server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const refused = await call(url, { oin: OIN_A }, undefined);
      expect(refused.status).to.equal(401);
      expect(refused.headers['x-api']).to.equal('seen');
      expect(refused.json()['error']).to.equal('unauthorized');
      const allowed = await call(url, { oin: OIN_A }, tokenFor(OIN_A));
      expect(allowed.status).to.equal(200);
      expect(allowed.text).to.equal('reached');
      expect(allowed.headers['x-api']).to.equal('seen');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await gate.close();
    }
  });

  it('picks up a rewritten whitelist file without a restart', async () => {
    const tenants = twoTenants();
    (tenants[1] as { enabled?: boolean }).enabled = false;
    await api.writeWhitelist(tenants);
    await eventually(async () => {
      expect((await call(api.url, { oin: OIN_B }, tokenFor(OIN_B))).status).to.equal(403);
    });
    await api.writeWhitelist(twoTenants());
    await eventually(async () => {
      expect((await call(api.url, { oin: OIN_B }, tokenFor(OIN_B))).status).to.equal(200);
    });
  });

  it('exposes its metrics registry and readiness', async () => {
    await call(api.url, { oin: OIN_A }, tokenFor(OIN_A));
    const text = await api.gate.registry.metrics();
    expect(text).to.match(/oingate_decisions_total\{outcome="allowed",reason="ok"\} [1-9]/);
    const readiness = api.gate.readiness();
    expect(readiness).to.include({ ready: true, tenants: 2, lastError: null });
    expect(readiness.version).to.be.a('string');
  });

  it('passes an error of the API\'s own handler on to Koa, after the allowed decision', async () => {
    const gate = await createGate({ store: `file:${api.file}`, logLevel: 'silent' });
    const app = new Koa();
    app.silent = true;
    app.use(gate.middleware);
    app.use(() => {
      throw Object.assign(new Error('teapot'), { status: 418, expose: true });
    });
    const server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await call(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { oin: OIN_A }, tokenFor(OIN_A));
      expect(res.status).to.equal(418);
      expect(res.text).to.equal('teapot');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await gate.close();
    }
  });
});

describe('createGate()', () => {
  it('resolves while the store is down, answers 503 until a whitelist loads, then allows', async () => {
    const api = await startEmbedded(null);
    try {
      expect(api.gate.readiness().ready).to.equal(false);
      const res = await call(api.url, { oin: OIN_A }, tokenFor(OIN_A));
      expect(res.status).to.equal(503);
      expect(res.json()['error']).to.equal('unavailable');
      expect(api.hits).to.have.length(0);
      await api.writeWhitelist(twoTenants());
      await eventually(async () => {
        expect((await call(api.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
      });
    } finally {
      await api.close();
    }
  });

  it('reloads on request as POST /reload does, keeping the last good whitelist on a bad file', async () => {
    const api = await startEmbedded();
    try {
      await api.writeWhitelist('{"tenants": [ oops');
      const refused = await api.gate.reload();
      expect(refused.ok).to.equal(false);
      expect(refused.readiness.ready).to.equal(true);
      expect(refused.readiness.lastError).to.be.a('string');
      expect((await call(api.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
      await api.writeWhitelist(twoTenants());
      const accepted = await api.gate.reload();
      expect(accepted.ok).to.equal(true);
      expect(accepted.readiness.lastError).to.equal(null);
    } finally {
      await api.close();
    }
  });

  it('rejects a bad option with an error naming it', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ bodyLimit: 'lots' }, 'bodyLimit'],
      [{ requireJit: true }, 'requireJit'],
      [{ trustedProxies: '10.0.0.0/33' }, 'trustedProxies'],
      [{ oinPattern: '[0-9]{20}' }, 'oinPattern'],
      [{ store: 'mysql://x' }, 'store'],
      [{ upstream: 'http://127.0.0.1:1' }, 'upstream'],
      [{ logger: 'stdout' }, 'logger'],
    ];
    for (const [options, name] of cases) {
      let error: unknown;
      try {
        const gate = await createGate({ logLevel: 'silent', store: 'file:does-not-exist.json', ...options });
        await gate.close();
      } catch (caught) {
        error = caught;
      }
      expect(error, JSON.stringify(options)).to.be.instanceOf(SettingsError);
      expect((error as SettingsError).variable).to.equal(name);
      expect((error as Error).message).to.match(new RegExp(`^${name}: `));
    }
  });

  it('takes the options in their camelCase names, with the same meaning as the variables', async () => {
    const api = await startEmbedded(twoTenants(), { oinHeader: 'X-Organisation', tenantClaim: 'org', bodyLimit: 100 });
    try {
      const ok = await send(api.url, { method: 'GET', headers: { 'x-organisation': OIN_A, authorization: `Bearer ${signToken({ org: OIN_A })}` } });
      expect(ok.status).to.equal(200);
      const big = await call(api.url, { oin: OIN_A, pad: 'x'.repeat(200) }, tokenFor(OIN_A));
      expect(big.status).to.equal(413);
    } finally {
      await api.close();
    }
  });
});
