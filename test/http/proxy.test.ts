import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import {
  call,
  eventually,
  OIN_A,
  OIN_B,
  send,
  signToken,
  startGate,
  tokenFor,
  twoTenants,
  type Gate,
  type RequestOptions,
} from '../support/gate.ts';
import {
  closedPort,
  hangUp,
  headerNames,
  headerValues,
  slow,
  startUpstream,
  streamBody,
  startProxyFront,
  type ProxyFront,
  type RecordedRequest,
  type Upstream,
} from '../support/upstream.ts';
import { openUpstreamProxy, type UpstreamProxy } from '../../src/http/proxy.ts';
import { parseCidrList } from '../../src/ip/cidr.ts';
import { rawSession } from '../support/socket.ts';

interface BinaryResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Like send(), but keeps the response body as bytes. */
function sendBinary(baseUrl: string, options: RequestOptions = {}): Promise<BinaryResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? 'POST',
        path: options.path ?? '/api',
        headers: options.headers ?? {},
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Writes raw bytes on a fresh TCP connection and returns everything read until the server closes it. */
function rawExchange(baseUrl: string, bytes: string, timeoutMs = 3_000): Promise<string> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, timeoutMs);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

/** Every sample of one metric, keyed by its label text ('' when it has none). */
async function scrape(gate: Gate, name: string): Promise<Map<string, number>> {
  const res = await send(gate.adminUrl, { method: 'GET', path: '/metrics' });
  expect(res.status).to.equal(200);
  const samples = new Map<string, number>();
  for (const line of res.text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match && match[1] === name) samples.set(match[2] ?? '', Number(match[3]));
  }
  return samples;
}

function total(samples: Map<string, number>): number {
  let sum = 0;
  for (const value of samples.values()) sum += value;
  return sum;
}

function only(upstream: Upstream): RecordedRequest {
  expect(upstream.requests, 'requests the upstream received').to.have.length(1);
  return upstream.requests[0] as RecordedRequest;
}

function expectRefusalBody(res: { status: number; headers: IncomingHttpHeaders; text: string }, status: number, error: string): void {
  expect(res.status).to.equal(status);
  expect(res.headers['content-type']).to.match(/^application\/json/);
  const body = JSON.parse(res.text) as Record<string, unknown>;
  expect(Object.keys(body).sort()).to.deep.equal(['error', 'message', 'requestId']);
  expect(body['error']).to.equal(error);
  expect(res.headers['x-request-id']).to.be.a('string').and.not.equal('');
  expect(body['requestId']).to.equal(res.headers['x-request-id']);
}

describe('proxy mode', () => {
  let upstream: Upstream;
  let gate: Gate;
  before(async () => {
    upstream = await startUpstream();
    gate = await startGate(undefined, { OINGATE_UPSTREAM: upstream.url, OINGATE_BODY_LIMIT: '4096' });
  });
  after(async () => {
    await gate?.close();
    await upstream?.close();
  });
  beforeEach(() => upstream.reset());

  describe('forwarding the request unchanged', () => {
    it('passes the exact method, raw path and query to the upstream', async () => {
      const path = '/v1/a/../b//c?x=1&x=2&y=%2F';
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { path });
      expect(res.status).to.equal(200);
      const seen = only(upstream);
      expect(seen.method).to.equal('POST');
      expect(seen.url).to.equal(path);
    });

    it('passes the body bytes exactly, unusual whitespace and unicode included', async () => {
      const body = Buffer.from(
        ` \r\n\t{ "oin" :\t"${OIN_A}" ,\r\n  "name":"Gemeente \u00c9\u00e9n \u2014 \ud83c\udf37",` +
          `"escaped":"\\u00e9\\n\\/",\n\n  "n": 1.50e+2 ,"nbsp":"a\u00a0b\u2028c"  }\t\r\n `,
        'utf8',
      );
      const res = await send(gate.url, {
        path: '/v1/bytes',
        headers: { 'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${tokenFor(OIN_A)}` },
        body,
      });
      expect(res.status).to.equal(200);
      const seen = only(upstream);
      expect(seen.body.equals(body), 'body bytes arrive unchanged').to.equal(true);
      expect(headerValues(seen, 'content-length')).to.deep.equal([String(body.length)]);
    });

    for (const method of ['PUT', 'PATCH']) {
      it(`forwards ${method} with its body`, async () => {
        const body = JSON.stringify({ oin: OIN_A, change: method });
        const res = await call(gate.url, body, tokenFor(OIN_A), { method, path: `/v1/items/7?m=${method}` });
        expect(res.status).to.equal(200);
        const seen = only(upstream);
        expect(seen.method).to.equal(method);
        expect(seen.url).to.equal(`/v1/items/7?m=${method}`);
        expect(seen.body.toString('utf8')).to.equal(body);
      });
    }

    for (const method of ['DELETE', 'GET']) {
      it(`forwards ${method} carrying the OIN only in the x-oin header, without a body`, async () => {
        const res = await send(gate.url, {
          method,
          path: '/v1/items/7',
          headers: { 'x-oin': OIN_B, authorization: `Bearer ${tokenFor(OIN_B)}` },
        });
        expect(res.status).to.equal(200);
        const seen = only(upstream);
        expect(seen.method).to.equal(method);
        expect(seen.url).to.equal('/v1/items/7');
        expect(seen.body.length).to.equal(0);
        expect(headerValues(seen, 'transfer-encoding')).to.deep.equal([]);
        expect(headerValues(seen, 'x-authenticated-oin')).to.deep.equal([OIN_B]);
        expect(headerValues(seen, 'x-oin')).to.deep.equal([OIN_B]);
      });
    }
  });

  describe('headers added, removed and passed', () => {
    it('removes incoming x-authenticated-* headers and sets x-authenticated-oin to the verified OIN', async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), {
        headers: {
          'x-authenticated-oin': OIN_B,
          'X-Authenticated-User': 'admin',
          'x-authenticated-roles': 'superuser',
        },
      });
      expect(res.status).to.equal(200);
      const seen = only(upstream);
      expect(headerValues(seen, 'x-authenticated-oin')).to.deep.equal([OIN_A]);
      expect(headerValues(seen, 'x-authenticated-user')).to.deep.equal([]);
      expect(headerNames(seen).filter((name) => name.startsWith('x-authenticated-'))).to.deep.equal(['x-authenticated-oin']);
    });

    it("passes the client's sane x-request-id to the upstream and back", async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-request-id': 'trace-0af7651916cd43dd' } });
      expect(res.status).to.equal(200);
      expect(res.headers['x-request-id']).to.equal('trace-0af7651916cd43dd');
      expect(headerValues(only(upstream), 'x-request-id')).to.deep.equal(['trace-0af7651916cd43dd']);
    });

    it('replaces an insane x-request-id with a generated one, the same upstream and to the client', async () => {
      const insane = 'has spaces and "quotes"';
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-request-id': insane } });
      expect(res.status).to.equal(200);
      const generated = res.headers['x-request-id'];
      expect(generated).to.be.a('string').and.not.equal(insane);
      expect(generated).to.match(/^[\x21-\x7e]{1,128}$/);
      expect(headerValues(only(upstream), 'x-request-id')).to.deep.equal([generated]);
    });

    it('generates an x-request-id when the client sends none, the same upstream and to the client', async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      expect(res.status).to.equal(200);
      expect(res.headers['x-request-id']).to.be.a('string').and.not.equal('');
      expect(headerValues(only(upstream), 'x-request-id')).to.deep.equal([res.headers['x-request-id']]);
    });

    it('sets x-forwarded-for to the peer, x-forwarded-proto to http and x-forwarded-host to the client Host', async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      expect(res.status).to.equal(200);
      const seen = only(upstream);
      expect(headerValues(seen, 'x-forwarded-for')).to.deep.equal(['127.0.0.1']);
      expect(headerValues(seen, 'x-forwarded-proto')).to.deep.equal(['http']);
      expect(headerValues(seen, 'x-forwarded-host')).to.deep.equal([new URL(gate.url).host]);
    });

    it('appends the peer to an incoming x-forwarded-for and ignores an untrusted peer\'s proto/host claims', async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), {
        headers: {
          host: 'api.example.test',
          'x-forwarded-for': '203.0.113.7',
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'evil.example.test',
        },
      });
      expect(res.status).to.equal(200);
      const seen = only(upstream);
      expect(headerValues(seen, 'x-forwarded-for')).to.deep.equal(['203.0.113.7, 127.0.0.1']);
      expect(headerValues(seen, 'x-forwarded-proto')).to.deep.equal(['http']);
      expect(headerValues(seen, 'x-forwarded-host')).to.deep.equal(['api.example.test']);
    });

    it('does not forward hop-by-hop headers, nor those named in Connection', async () => {
      const token = tokenFor(OIN_A);
      const res = await call(gate.url, { oin: OIN_A }, token, {
        headers: {
          connection: 'x-foo',
          'x-foo': 'connection-specific',
          'keep-alive': 'timeout=5',
          te: 'trailers',
          upgrade: 'h2c',
          'proxy-authorization': 'Basic cHJveHk6c2VjcmV0',
        },
      });
      expect(res.status).to.equal(200);
      const names = headerNames(only(upstream));
      for (const hop of ['x-foo', 'keep-alive', 'te', 'upgrade', 'proxy-authorization']) {
        expect(names, `${hop} must not be forwarded`).not.to.include(hop);
      }
      // `connection` may be the upstream client's own, but never the client's tokens.
      for (const value of headerValues(only(upstream), 'connection')) expect(value.toLowerCase()).not.to.include('x-foo');
    });

    it('forwards authorization and other end-to-end headers unchanged', async () => {
      const token = tokenFor(OIN_A);
      const res = await call(gate.url, { oin: OIN_A }, token, {
        headers: { 'x-custom': 'Value With Spaces; and=stuff', 'x-repeated': ['one', 'two'], accept: 'application/problem+json' },
      });
      expect(res.status).to.equal(200);
      const seen = only(upstream);
      expect(headerValues(seen, 'authorization')).to.deep.equal([`Bearer ${token}`]);
      expect(headerValues(seen, 'x-custom')).to.deep.equal(['Value With Spaces; and=stuff']);
      expect(headerValues(seen, 'x-repeated')).to.deep.equal(['one', 'two']);
      expect(headerValues(seen, 'accept')).to.deep.equal(['application/problem+json']);
      expect(headerValues(seen, 'content-type')).to.deep.equal(['application/json']);
    });
  });

  describe("the upstream's response", () => {
    for (const status of [201, 404, 500]) {
      it(`comes back with status ${status}, its headers and body unchanged`, async () => {
        const body = `{"from":"upstream","status":${status},"text":"caf\u00e9 \ud83c\udf37"}`;
        upstream.handle((_req, res) => {
          res.setHeader('x-upstream-custom', `yes-${status}`);
          res.setHeader('set-cookie', ['a=1; Path=/; HttpOnly', 'b=2; Secure']);
          res.setHeader('content-type', 'application/vnd.upstream+json');
          res.setHeader('cache-control', 'no-store');
          res.writeHead(status);
          res.end(body);
        });
        const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
        expect(res.status).to.equal(status);
        expect(res.text).to.equal(body);
        expect(res.headers['x-upstream-custom']).to.equal(`yes-${status}`);
        expect(res.headers['set-cookie']).to.deep.equal(['a=1; Path=/; HttpOnly', 'b=2; Secure']);
        expect(res.headers['content-type']).to.equal('application/vnd.upstream+json');
        expect(res.headers['cache-control']).to.equal('no-store');
        expect(res.headers['x-request-id']).to.be.a('string').and.not.equal('');
      });
    }

    it('streams a large (5 MiB) chunked body back intact', async () => {
      const streamed = streamBody(5 * 1024 * 1024);
      upstream.handle(streamed.handler);
      const res = await sendBinary(gate.url, {
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenFor(OIN_A)}` },
        body: JSON.stringify({ oin: OIN_A }),
      });
      expect(res.status).to.equal(200);
      expect(res.headers['x-streamed']).to.equal('yes');
      expect(res.body.length).to.equal(streamed.bytes);
      expect(createHash('sha256').update(res.body).digest('hex')).to.equal(streamed.sha256);
    });

    it('logs the proxied decision as allowed with the upstream status', async () => {
      upstream.handle((_req, res) => {
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end('{}');
      });
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-request-id': 'log-check-201' } });
      expect(res.status).to.equal(201);
      await eventually(() => {
        const line = gate.logs.decisions().find((entry) => entry['requestId'] === 'log-check-201');
        expect(line, 'decision log line').to.not.equal(undefined);
        expect(line).to.include({ outcome: 'allowed', reason: 'ok', status: 201, oin: OIN_A, clientIp: '127.0.0.1' });
      });
    });
  });

  describe('refused requests never reach the upstream', () => {
    const cases: Array<{ status: number; error: string; title: string; request: () => Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> }> = [
      {
        status: 400,
        error: 'bad_request',
        title: 'invalid JSON',
        request: () => call(gate.url, `{"oin":"${OIN_A}",`, tokenFor(OIN_A)),
      },
      {
        status: 401,
        error: 'unauthorized',
        title: 'no bearer token',
        request: () => call(gate.url, { oin: OIN_A }, undefined),
      },
      {
        status: 401,
        error: 'unauthorized',
        title: "another tenant's token",
        request: () => call(gate.url, { oin: OIN_A }, tokenFor(OIN_B)),
      },
      {
        status: 403,
        error: 'forbidden',
        title: 'an unknown tenant',
        request: () => call(gate.url, { oin: '00000009999999999999' }, signToken({ oin: '00000009999999999999' })),
      },
      {
        status: 403,
        error: 'forbidden',
        title: 'a tenant claim that differs from the OIN',
        request: () => call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_B })),
      },
      {
        status: 413,
        error: 'payload_too_large',
        title: 'a body over OINGATE_BODY_LIMIT',
        request: () => call(gate.url, JSON.stringify({ oin: OIN_A, pad: 'x'.repeat(5_000) }), tokenFor(OIN_A)),
      },
      {
        status: 415,
        error: 'unsupported_media_type',
        title: 'a text/plain body',
        request: () =>
          send(gate.url, {
            headers: { 'content-type': 'text/plain', authorization: `Bearer ${tokenFor(OIN_A)}`, 'x-oin': OIN_A },
            body: JSON.stringify({ oin: OIN_A }),
          }),
      },
      {
        status: 415,
        error: 'unsupported_media_type',
        title: 'a gzip content-encoding',
        request: () =>
          call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'content-encoding': 'gzip' } }),
      },
    ];
    for (const refused of cases) {
      it(`${refused.status} for ${refused.title}: the JSON refusal, and the upstream receives nothing`, async () => {
        const res = await refused.request();
        expectRefusalBody(res, refused.status, refused.error);
        if (refused.status === 401) expect(res.headers['www-authenticate']).to.equal('Bearer');
        expect(upstream.requests, 'requests the upstream received').to.have.length(0);
      });
    }

    it('answers a CL+TE smuggling attempt with 400, and neither request reaches the upstream', async () => {
      const token = tokenFor(OIN_A);
      const smuggled = `GET /smuggled HTTP/1.1\r\nHost: x\r\nx-oin: ${OIN_A}\r\nAuthorization: Bearer ${token}\r\n\r\n`;
      const outer = `{"oin":"${OIN_A}"}`;
      const chunked = `${outer.length.toString(16)}\r\n${outer}\r\n0\r\n\r\n`;
      const raw =
        `POST /api HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Authorization: Bearer ${token}\r\nContent-Length: ${Buffer.byteLength(chunked)}\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n${chunked}${smuggled}`;
      const answer = await rawExchange(gate.url, raw);
      expect(answer).to.match(/^HTTP\/1\.1 400 /);
      expect(answer.match(/HTTP\/1\.1 \d{3} /g), 'exactly one response').to.have.length(1);
      expect(answer).to.include('"error":"bad_request"');
      expect(answer.toLowerCase()).to.include('x-request-id:');
      expect(upstream.requests, 'requests the upstream received').to.have.length(0);
    });

    it('answers conflicting duplicate Content-Length headers with 400, and nothing reaches the upstream', async () => {
      const body = `{"oin":"${OIN_A}"}`;
      const raw =
        `POST /api HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Authorization: Bearer ${tokenFor(OIN_A)}\r\nContent-Length: ${body.length}\r\nContent-Length: 4\r\n\r\n${body}`;
      const answer = await rawExchange(gate.url, raw);
      expect(answer).to.match(/^HTTP\/1\.1 400 /);
      expect(upstream.requests, 'requests the upstream received').to.have.length(0);
    });

    it('does not count refusals or successes as upstream errors', async () => {
      expect(total(await scrape(gate, 'oingate_upstream_errors_total'))).to.equal(0);
    });
  });
});

describe('proxy mode behind a trusted front proxy, on a dual-stack listener', () => {
  let upstream: Upstream;
  let gate: Gate;
  let port: string;
  before(async () => {
    upstream = await startUpstream();
    const tenants = twoTenants();
    (tenants[0] as { cidrs: string[] }).cidrs = ['203.0.113.0/24', '127.0.0.0/8', '::1/128'];
    gate = await startGate(tenants, {
      OINGATE_UPSTREAM: upstream.url,
      OINGATE_LISTEN: '[::]:0',
      OINGATE_TRUSTED_PROXIES: '127.0.0.1/32',
    });
    port = new URL(gate.url).port;
  });
  after(async () => {
    await gate?.close();
    await upstream?.close();
  });
  beforeEach(() => upstream.reset());

  it("passes on a trusted front proxy's x-forwarded-proto and x-forwarded-host, and appends its IPv4-mapped address as IPv4", async () => {
    const res = await call(`http://127.0.0.1:${port}`, { oin: OIN_A }, tokenFor(OIN_A), {
      headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.test' },
    });
    expect(res.status).to.equal(200);
    const seen = only(upstream);
    expect(headerValues(seen, 'x-forwarded-proto')).to.deep.equal(['https']);
    expect(headerValues(seen, 'x-forwarded-host')).to.deep.equal(['api.example.test']);
    // The peer arrives as ::ffff:127.0.0.1 on a dual-stack socket; it is written as the IPv4 address.
    expect(headerValues(seen, 'x-forwarded-for')).to.deep.equal(['203.0.113.7, 127.0.0.1']);
    expect(gate.logs.last()?.['clientIp']).to.equal('203.0.113.7');
  });

  it('appends an IPv6 peer in its canonical form', async () => {
    const res = await call(`http://[::1]:${port}`, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-forwarded-proto': 'https' } });
    expect(res.status, 'tenant A allows ::1/128').to.equal(200);
    const seen = only(upstream);
    expect(headerValues(seen, 'x-forwarded-for')).to.deep.equal(['::1']);
    expect(headerValues(seen, 'x-forwarded-proto'), '::1 is not a trusted proxy').to.deep.equal(['http']);
  });
});

describe('proxy mode with a failing upstream', () => {
  describe('upstream down', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate(undefined, { OINGATE_UPSTREAM: `http://127.0.0.1:${await closedPort()}` });
    });
    after(() => gate?.close());

    it('answers 502 bad_gateway JSON with x-request-id when the upstream refuses the connection', async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-request-id': 'down-1' } });
      expectRefusalBody(res, 502, 'bad_gateway');
      expect(res.headers['x-request-id']).to.equal('down-1');
    });

    it('counts the 502 in oingate_upstream_errors_total and logs it as not a clean pass', async () => {
      const before = total(await scrape(gate, 'oingate_upstream_errors_total'));
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-request-id': 'down-2' } });
      expect(res.status).to.equal(502);
      expect(total(await scrape(gate, 'oingate_upstream_errors_total'))).to.equal(before + 1);
      await eventually(() => {
        const line = gate.logs.decisions().find((entry) => entry['requestId'] === 'down-2');
        expect(line).to.include({ status: 502 });
        expect(line?.['upstreamError']).to.be.a('string');
      });
    });
  });

  describe('upstream slow or crashing', () => {
    let upstream: Upstream;
    let gate: Gate;
    before(async () => {
      upstream = await startUpstream();
      gate = await startGate(undefined, { OINGATE_UPSTREAM: upstream.url, OINGATE_UPSTREAM_TIMEOUT_MS: '300' });
    });
    after(async () => {
      await gate?.close();
      await upstream?.close();
    });
    beforeEach(() => upstream.reset());

    it('answers 504 gateway_timeout when the upstream is slower than OINGATE_UPSTREAM_TIMEOUT_MS', async () => {
      upstream.handle(slow(3_000));
      const started = Date.now();
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      const elapsed = Date.now() - started;
      expectRefusalBody(res, 504, 'gateway_timeout');
      expect(upstream.requests, 'the request did reach the upstream').to.have.length(1);
      expect(elapsed, 'gave up well before the upstream answered').to.be.below(2_500);
    });

    it('answers 502 bad_gateway when the upstream destroys the connection mid-request', async () => {
      upstream.handle(hangUp);
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      expectRefusalBody(res, 502, 'bad_gateway');
      expect(upstream.requests.length, 'the request did reach the upstream').to.be.at.least(1);
    });

    it('counts 502 and 504 separately in oingate_upstream_errors_total', async () => {
      const before = await scrape(gate, 'oingate_upstream_errors_total');
      upstream.handle(slow(3_000));
      expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(504);
      const afterTimeout = await scrape(gate, 'oingate_upstream_errors_total');
      upstream.handle(hangUp);
      expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(502);
      const afterFailure = await scrape(gate, 'oingate_upstream_errors_total');

      expect(total(afterTimeout)).to.equal(total(before) + 1);
      expect(total(afterFailure)).to.equal(total(before) + 2);
      const grew = (from: Map<string, number>, to: Map<string, number>) =>
        [...to.keys()].filter((labels) => (to.get(labels) ?? 0) > (from.get(labels) ?? 0));
      const timeoutSeries = grew(before, afterTimeout);
      const failureSeries = grew(afterTimeout, afterFailure);
      expect(timeoutSeries).to.have.length(1);
      expect(failureSeries).to.have.length(1);
      expect(timeoutSeries[0], 'timeouts and failures are told apart').to.not.equal(failureSeries[0]);
    });

    it('survives a client that leaves while the upstream is still thinking', async () => {
      upstream.handle(slow(150));
      await clientLeavesEarly(gate.url, 50);
      // Wait until the upstream has answered into the void, then check the gate still serves.
      await eventually(() => {
        expect(gate.logs.decisions().some((line) => line['upstreamError'] === 'client_gone')).to.equal(true);
      });
      upstream.handle();
      expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    });

    it('survives a client that leaves in the middle of a streamed response body', async () => {
      upstream.handle(streamBody(8 * 1024 * 1024, 16 * 1024).handler);
      await clientLeavesEarly(gate.url, 0, true);
      await eventually(() => {
        expect(gate.logs.decisions().filter((line) => line['upstreamError'] === 'client_gone').length).to.be.at.least(1);
      });
      upstream.handle();
      expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    });

    it('still forwards normally once the upstream behaves again', async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { path: '/after?ok=1' });
      expect(res.status).to.equal(200);
      expect(only(upstream).url).to.equal('/after?ok=1');
    });
  });
});

/** Sends an allowed request and closes the connection after `afterMs`, or once the first body bytes arrive. */
function clientLeavesEarly(baseUrl: string, afterMs: number, onFirstBytes = false): Promise<void> {
  const url = new URL(baseUrl);
  const body = JSON.stringify({ oin: OIN_A });
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.write(
        `POST /leave HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${tokenFor(OIN_A)}\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      if (!onFirstBytes) setTimeout(() => socket.destroy(), afterMs);
    });
    socket.once('data', () => {
      if (onFirstBytes) socket.destroy();
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

describe('proxy: the queue of requests waiting for an upstream connection', () => {
  let upstream: Upstream;
  let proxy: UpstreamProxy;
  let front: ProxyFront;
  before(async () => {
    upstream = await startUpstream();
    // One connection, one waiting place: a slow upstream fills both at once.
    proxy = await openUpstreamProxy({
      upstream: new URL(upstream.url),
      timeoutMs: 5_000,
      trustedProxies: parseCidrList([]),
      connections: 1,
      maxQueued: 1,
    });
    front = await startProxyFront(proxy, OIN_A);
  });
  after(async () => {
    await front?.close();
    await proxy?.close();
    await upstream?.close();
  });
  beforeEach(() => upstream.reset());
  afterEach(async () => {
    await eventually(() => {
      expect(proxy.load).to.deep.equal({ active: 0, queued: 0 });
    });
  });

  const get = (path: string) => send(front.url, { method: 'GET', path });
  const until = (check: () => unknown) =>
    eventually(() => {
      check();
    });

  it('answers 503 unavailable at once when the queue is full, logging upstream_queue_full', async () => {
    upstream.handle(slow(400));
    const first = get('/first');
    await until(() => expect(upstream.requests).to.have.length(1));
    const second = get('/second');
    await until(() => expect(proxy.load.queued).to.equal(1));
    const started = Date.now();
    const third = await get('/third');
    expect(third.status).to.equal(503);
    expect(third.json()['error']).to.equal('unavailable');
    expect(Date.now() - started, 'refused without waiting').to.be.below(300);
    expect(front.states.at(-1)?.upstreamError).to.equal('upstream_queue_full');
    expect((await first).status).to.equal(200);
    expect((await second).status).to.equal(200);
    expect(upstream.requests.map((seen) => seen.url)).to.deep.equal(['/first', '/second']);
  });

  it('never sends a queued request whose client has left', async () => {
    upstream.handle(slow(300));
    const first = get('/first');
    await until(() => expect(upstream.requests).to.have.length(1));
    const left = rawSession(front.url, (socket) => {
      socket.write('GET /gone HTTP/1.1\r\nHost: x\r\n\r\n');
      setTimeout(() => socket.destroy(), 100);
    });
    await until(() => expect(proxy.load.queued).to.equal(1));
    await left;
    await until(() => expect(proxy.load.queued, 'left the queue with its client').to.equal(0));
    expect((await first).status).to.equal(200);
    upstream.handle();
    expect((await get('/after')).status).to.equal(200);
    expect(upstream.requests.map((seen) => seen.url)).to.deep.equal(['/first', '/after']);
    expect(front.states.some((state) => state.upstreamError === 'client_gone_queued')).to.equal(true);
  });

  it('gives the connection back when clients leave mid-exchange, so later requests still pass', async () => {
    upstream.handle(slow(200));
    for (let i = 0; i < 3; i += 1) {
      await rawSession(front.url, (socket) => {
        socket.write(`GET /leave-${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
        setTimeout(() => socket.destroy(), 50);
      });
    }
    await until(() => expect(proxy.load.active).to.equal(0));
    upstream.handle();
    expect((await get('/after')).status).to.equal(200);
  });

  it('gives the connection back when the client leaves in the middle of a streamed response body', async () => {
    upstream.handle(streamBody(8 * 1024 * 1024, 16 * 1024).handler);
    // Gone at the first bytes of the answer: the exchange is mid-body, the only connection in use.
    await rawSession(front.url, (socket) => {
      socket.write('GET /streamed HTTP/1.1\r\nHost: x\r\n\r\n');
      socket.once('data', () => socket.destroy());
    });
    await until(() => expect(proxy.load.active, 'the connection given back').to.equal(0));
    upstream.handle();
    expect((await get('/after')).status).to.equal(200);
    expect(upstream.requests.map((seen) => seen.url)).to.deep.equal(['/streamed', '/after']);
  });
});

describe('proxy: a client that leaves before its request is forwarded', () => {
  let upstream: Upstream;
  let proxy: UpstreamProxy;
  let front: ProxyFront;
  before(async () => {
    upstream = await startUpstream();
    proxy = await openUpstreamProxy({ upstream: new URL(upstream.url), timeoutMs: 5_000, trustedProxies: parseCidrList([]) });
    front = await startProxyFront(proxy, OIN_A, undefined, 200);
  });
  after(async () => {
    await front?.close();
    await proxy?.close();
    await upstream?.close();
  });

  it('is never sent to the upstream', async () => {
    await rawSession(front.url, (socket) => {
      socket.write('GET /gone-early HTTP/1.1\r\nHost: x\r\n\r\n');
      setTimeout(() => socket.destroy(), 50);
    });
    await eventually(() => {
      expect(front.states[0]?.upstreamError).to.equal('client_gone');
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(upstream.requests).to.have.length(0);
    expect(proxy.load).to.deep.equal({ active: 0, queued: 0 });
  });
});
