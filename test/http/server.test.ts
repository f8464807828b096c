import { expect } from 'chai';
import type { Socket } from 'node:net';
import { MAX_HEADER_LINES } from '../../src/http/server.ts';
import { call, eventually, OIN_A, send, startGate, tokenFor, type Gate } from '../support/gate.ts';
import { chunkedBody, parseRaw, rawExchange, rawSession, trickle, type RawAnswer } from '../support/socket.ts';
import { startUpstream, type Upstream } from '../support/upstream.ts';

function expectJsonRefusal(answer: RawAnswer, status: number, error: string): void {
  const parsed = parseRaw(answer);
  expect(parsed.status, answer.text.slice(0, 200)).to.equal(status);
  expect(parsed.headers.get('content-type')).to.match(/^application\/json/);
  expect(parsed.body && Object.keys(parsed.body).sort()).to.deep.equal(['error', 'message', 'requestId']);
  expect(parsed.body?.['error']).to.equal(error);
  expect(parsed.headers.get('x-request-id')).to.be.a('string').and.equal(parsed.body?.['requestId']);
}

const ALLOWED_HEAD = (extra: string) =>
  `POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${tokenFor(OIN_A)}\r\n${extra}`;

describe('public listener: HTTP the parser refuses, and slow clients', () => {
  let upstream: Upstream;
  let gate: Gate;
  before(async () => {
    upstream = await startUpstream();
    gate = await startGate(undefined, {
      OINGATE_UPSTREAM: upstream.url,
      OINGATE_CLIENT_TIMEOUT_MS: '500',
      OINGATE_BODY_LIMIT: '4096',
    });
  });
  after(async () => {
    await gate?.close();
    await upstream?.close();
  });
  beforeEach(() => upstream.reset());

  it('cuts a client trickling its headers at the client timeout with 408 JSON', async () => {
    const answer = await trickle(gate.url, 'GET /api HTTP/1.1\r\n', 'Host: x\r\nX-Slow: ' + 'a'.repeat(200), 100, 10_000);
    expectJsonRefusal(answer, 408, 'request_timeout');
    expect(answer.closed).to.equal(true);
    expect(answer.ms, 'cut soon after the 500 ms timeout').to.be.below(2_500);
  });

  it('cuts a client trickling its body with 408 JSON, and the upstream never sees it', async () => {
    const body = JSON.stringify({ oin: OIN_A, pad: 'x'.repeat(50) });
    const answer = await trickle(gate.url, ALLOWED_HEAD(`Content-Length: ${body.length}\r\n\r\n`), body, 100, 10_000);
    expectJsonRefusal(answer, 408, 'request_timeout');
    expect(answer.ms, 'cut within twice the timeout and a check interval').to.be.below(3_000);
    expect(upstream.requests).to.have.length(0);
  });

  it('refuses a body of 1-byte chunks with 400 JSON and closes the connection, forwarding nothing', async () => {
    const answer = await rawExchange(gate.url, ALLOWED_HEAD(`Transfer-Encoding: chunked\r\n\r\n${chunkedBody(3_000, 1)}`), 5_000);
    expectJsonRefusal(answer, 400, 'bad_request');
    expect(answer.closed, 'the connection is closed, the rest of the body never drained').to.equal(true);
    expect(answer.ms).to.be.below(2_000);
    expect(upstream.requests).to.have.length(0);
  });

  it('keeps a connection alive across allowed requests, bodies included', async () => {
    const body = JSON.stringify({ oin: OIN_A });
    const request = ALLOWED_HEAD(`Content-Length: ${body.length}\r\n\r\n${body}`);
    let answers = 0;
    const answer = await rawSession(gate.url, (socket: Socket) => {
      socket.write(request);
      socket.on('data', () => {
        answers += 1;
        if (answers < 3) socket.write(request);
      });
    }, 1_500);
    expect(answer.closed, 'still open').to.equal(false);
    expect(answer.text.match(/HTTP\/1\.1 200 /g)).to.have.length(3);
    expect(upstream.requests).to.have.length(3);
  });

  it('answers a request without Host with 400 JSON, not a bare 400', async () => {
    const answer = await rawExchange(gate.url, 'GET /api HTTP/1.1\r\nX-Oin: 1\r\n\r\n');
    expectJsonRefusal(answer, 400, 'bad_request');
    await eventually(() => {
      expect(gate.logs.last()).to.include({ reason: 'host_missing', status: 400 });
    });
  });

  it('answers an otherwise allowed request with two Host headers with 400 JSON, and forwards nothing', async () => {
    const answer = await rawExchange(
      gate.url,
      `GET /api HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Oin: ${OIN_A}\r\nAuthorization: Bearer ${tokenFor(OIN_A)}\r\nConnection: close\r\n\r\n`,
    );
    expectJsonRefusal(answer, 400, 'bad_request');
    expect(upstream.requests).to.have.length(0);
  });

  it('lets an HTTP/1.0 request without Host through to the gate', async () => {
    const answer = await rawExchange(gate.url, 'GET /api HTTP/1.0\r\n\r\n');
    // The gate's own answer: no token (or no OIN), never the Host refusal.
    expect(parseRaw(answer).status).to.be.oneOf([400, 401]);
    await eventually(() => {
      expect(gate.logs.last()?.['reason']).to.not.equal('host_missing');
    });
  });

  it('answers oversized headers with 431 headers_too_large JSON', async () => {
    const answer = await rawExchange(gate.url, `GET /api HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expectJsonRefusal(answer, 431, 'headers_too_large');
  });

  it('refuses with 431 a request whose Transfer-Encoding comes after the header-count cap, and forwards nothing', async () => {
    const filler = Array.from({ length: MAX_HEADER_LINES }, (_, i) => `X-F${i}: 1\r\n`).join('');
    const body = `{"oin":"${OIN_A}"}`;
    const raw =
      `POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Oin: ${OIN_A}\r\n` +
      `Authorization: Bearer ${tokenFor(OIN_A)}\r\n${filler}Transfer-Encoding: chunked\r\n\r\n` +
      `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const answer = await rawExchange(gate.url, raw);
    expectJsonRefusal(answer, 431, 'headers_too_large');
    expect(upstream.requests).to.have.length(0);
  });

  it('still forwards a request with many headers under the cap', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < MAX_HEADER_LINES - 10; i += 1) headers[`x-f${i}`] = '1';
    const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers });
    expect(res.status).to.equal(200);
    expect(upstream.requests).to.have.length(1);
  });

  it('answers CONNECT with a JSON refusal instead of dropping the connection', async () => {
    const answer = await rawExchange(gate.url, 'CONNECT upstream.example:443 HTTP/1.1\r\nHost: upstream.example:443\r\n\r\n');
    expectJsonRefusal(answer, 405, 'method_not_allowed');
  });

  for (const [title, raw] of [
    ['a garbage request line', 'GARBAGE\r\n\r\n'],
    ['a header name with a space', 'GET /api HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n'],
    ['a non-numeric Content-Length', 'POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
    ['Content-Length together with Transfer-Encoding', 'POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ] as const) {
    it(`answers ${title} with 400 JSON and x-request-id`, async () => {
      expectJsonRefusal(await rawExchange(gate.url, raw), 400, 'bad_request');
    });
  }

  it('answers Expect: 100-continue with a declared body over the limit with 413, never 100 Continue', async () => {
    const answer = await rawExchange(gate.url, ALLOWED_HEAD('Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n'));
    expect(answer.text.startsWith('HTTP/1.1 413 '), answer.text.slice(0, 100)).to.equal(true);
    expect(answer.text).not.to.include('100 Continue');
    expectJsonRefusal(answer, 413, 'payload_too_large');
    expect(upstream.requests).to.have.length(0);
  });

  it('answers Expect: 100-continue within the limit with 100 Continue, then forwards the body', async () => {
    const body = JSON.stringify({ oin: OIN_A });
    const answer = await rawSession(gate.url, (socket: Socket) => {
      socket.write(ALLOWED_HEAD(`Content-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`));
      socket.once('data', () => socket.write(body));
    });
    expect(answer.text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')).to.equal(true);
    expect(answer.text).to.include('HTTP/1.1 200 ');
    expect(upstream.requests).to.have.length(1);
    expect(upstream.requests[0]?.body.toString()).to.equal(body);
  });

  it('answers an Expect other than 100-continue with 417 JSON', async () => {
    const answer = await rawExchange(gate.url, 'GET /api HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n');
    expectJsonRefusal(answer, 417, 'expectation_failed');
  });
});

describe('public listener: OINGATE_MAX_CONNECTIONS', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate(undefined, { OINGATE_MAX_CONNECTIONS: '2' });
  });
  after(() => gate?.close());

  it('closes connections over the cap at once, and serves again once one is gone', async () => {
    const held: Array<Promise<RawAnswer>> = [];
    const sockets: Socket[] = [];
    for (let i = 0; i < 2; i += 1) {
      held.push(rawSession(gate.url, (socket) => sockets.push(socket), 10_000));
    }
    await eventually(() => {
      expect(sockets).to.have.length(2);
    });
    // Give the server a moment to count them as open (accept is asynchronous).
    await new Promise((resolve) => setTimeout(resolve, 50));
    const extra = await rawExchange(gate.url, 'GET /api HTTP/1.1\r\nHost: x\r\n\r\n', 5_000);
    expect(extra.closed, 'the extra connection is closed').to.equal(true);
    expect(extra.text, 'without an answer').to.equal('');
    expect(extra.ms, 'at once').to.be.below(1_000);
    for (const socket of sockets) socket.destroy();
    await Promise.all(held);
    await eventually(async () => {
      expect((await send(gate.url, { method: 'GET', headers: { 'x-oin': OIN_A, authorization: `Bearer ${tokenFor(OIN_A)}` } })).status).to.equal(200);
    });
  });
});
