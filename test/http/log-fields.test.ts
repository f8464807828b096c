import { expect } from 'chai';
import { connect } from 'node:net';
import { call, OIN_A, OIN_B, send, signToken, startGate, tokenFor, type Gate } from '../support/gate.ts';
import { startUpstream, type Upstream } from '../support/upstream.ts';

/** The decision line of the request with this request id. */
function lineOf(gate: Gate, requestId: string): Record<string, unknown> {
  const line = gate.logs.decisions().find((entry) => entry['requestId'] === requestId);
  expect(line, `a decision line for ${requestId}`).to.not.equal(undefined);
  return line as Record<string, unknown>;
}

let counter = 0;
function rid(): string {
  counter += 1;
  return `log-fields-${counter}`;
}

describe('decision log fields', () => {
  describe('with a whitelist', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate(undefined, { OINGATE_BODY_LIMIT: '1000' });
    });
    after(() => gate.close());

    it('logs clientIp, peer and the OIN header of a body refused for its declared size', async () => {
      const id = rid();
      const res = await send(gate.url, {
        headers: { 'content-type': 'application/json', 'content-length': '5000', 'x-oin': OIN_A, 'x-request-id': id },
        body: 'x'.repeat(10),
      }).catch(() => undefined);
      if (res) expect(res.status).to.equal(413);
      const line = lineOf(gate, id);
      expect(line).to.include({ reason: 'body_too_large', clientIp: '127.0.0.1', peer: '127.0.0.1', oin: OIN_A, oinHeader: OIN_A });
    });

    it('logs clientIp and the OIN header of a body refused before 100 Continue', async () => {
      const id = rid();
      const url = new URL(gate.url);
      const socket = connect(Number(url.port), url.hostname);
      socket.on('error', () => undefined);
      const answer = new Promise<string>((resolve) => {
        let text = '';
        socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        socket.once('close', () => resolve(text));
      });
      socket.write(
        `POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\nExpect: 100-continue\r\nx-oin: ${OIN_B}\r\nx-request-id: ${id}\r\n\r\n`,
      );
      expect(await answer).to.match(/^HTTP\/1\.1 413 /);
      expect(lineOf(gate, id)).to.include({ reason: 'body_too_large', clientIp: '127.0.0.1', peer: '127.0.0.1', oin: OIN_B });
    });

    it('logs the OIN header of a body refused for its media type, cut to 128 characters', async () => {
      const id = rid();
      const long = '9'.repeat(300);
      const res = await send(gate.url, { headers: { 'content-type': 'text/plain', 'x-oin': long, 'x-request-id': id }, body: 'hello' });
      expect(res.status).to.equal(415);
      const line = lineOf(gate, id);
      expect(line).to.include({ reason: 'media_type', clientIp: '127.0.0.1', oin: '9'.repeat(128), oinHeader: '9'.repeat(128) });
    });

    it('logs the OIN header of a body refused for its charset', async () => {
      const id = rid();
      const res = await send(gate.url, { headers: { 'content-type': 'application/json; charset=latin1', 'x-oin': OIN_B, 'x-request-id': id }, body: '{}' });
      expect(res.status).to.equal(415);
      expect(lineOf(gate, id)).to.include({ reason: 'charset', clientIp: '127.0.0.1', oin: OIN_B });
    });

    it('logs both OINs of an oin_conflict, each cut to 128 characters', async () => {
      const id = rid();
      const bodyOin = `${OIN_B}${'7'.repeat(200)}`;
      const res = await call(gate.url, { oin: bodyOin }, tokenFor(OIN_A), { headers: { 'x-oin': OIN_A, 'x-request-id': id } });
      expect(res.status).to.equal(400);
      const line = lineOf(gate, id);
      expect(line).to.include({ reason: 'oin_conflict', clientIp: '127.0.0.1', oinHeader: OIN_A, oinBody: bodyOin.slice(0, 128) });
    });

    it('logs the first two values of a repeated OIN header', async () => {
      const id = rid();
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-oin': [OIN_A, OIN_B, OIN_B], 'x-request-id': id } });
      expect(res.status).to.equal(400);
      expect(lineOf(gate, id)).to.include({ reason: 'oin_header_repeated', oinHeader: `${OIN_A}, ${OIN_B}` });
    });

    it('logs the OIN that does not match the pattern', async () => {
      const id = rid();
      const res = await call(gate.url, { oin: 'not-an-oin' }, tokenFor(OIN_A), { headers: { 'x-request-id': id } });
      expect(res.status).to.equal(400);
      expect(lineOf(gate, id)).to.include({ reason: 'oin_pattern', oinBody: 'not-an-oin' });
    });

    it('logs the kid of the verified key, and the kid a refused token names', async () => {
      const allowed = rid();
      expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-request-id': allowed } })).status).to.equal(200);
      expect(lineOf(gate, allowed)).to.include({ outcome: 'allowed', kid: 'a1', oin: OIN_A, peer: '127.0.0.1' });

      const expired = rid();
      const token = signToken({ oin: OIN_A, iat: 1_000, exp: 2_000 });
      expect((await call(gate.url, { oin: OIN_A }, token, { headers: { 'x-request-id': expired } })).status).to.equal(401);
      expect(lineOf(gate, expired)).to.include({ reason: 'token_expired', kid: 'a1', oin: OIN_A });
    });

    it('never logs the token or the body', async () => {
      const id = rid();
      const token = tokenFor(OIN_B);
      const marker = 'body-marker-that-must-not-be-logged';
      await call(gate.url, { oin: OIN_A, note: marker }, token, { headers: { 'x-request-id': id } });
      const text = JSON.stringify(lineOf(gate, id));
      expect(text).to.not.include(token.split('.')[2] as string);
      expect(text).to.not.include(marker);
    });
  });

  describe('behind a trusted proxy', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate(undefined, { OINGATE_TRUSTED_PROXIES: '127.0.0.0/8' });
    });
    after(() => gate.close());

    it('logs the peer and the malformed X-Forwarded-For entry, cut to 128 characters', async () => {
      const id = rid();
      const bad = `bad-${'z'.repeat(300)}`;
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-forwarded-for': `203.0.113.9, ${bad}`, 'x-request-id': id } });
      expect(res.status).to.equal(403);
      const line = lineOf(gate, id);
      expect(line).to.include({ reason: 'forwarded_for_malformed', peer: '127.0.0.1' });
      expect(line['forwardedFor']).to.equal(bad.slice(0, 128));
    });

    it('logs the start of an X-Forwarded-For with too many trusted hops, where no single entry is the reason', async () => {
      const id = rid();
      const header = Array.from({ length: 70 }, () => '127.0.0.1').join(', ');
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-forwarded-for': header, 'x-request-id': id } });
      expect(res.status).to.equal(403);
      expect(lineOf(gate, id)).to.include({ reason: 'forwarded_for_malformed', forwardedFor: header.slice(0, 128) });
    });
  });

  describe('before any whitelist is loaded', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate(null);
    });
    after(() => gate.close());

    it('logs not_ready with the client IP and the OIN header', async () => {
      const id = rid();
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-oin': OIN_A, 'x-request-id': id } });
      expect(res.status).to.equal(503);
      expect(lineOf(gate, id)).to.include({ reason: 'not_ready', clientIp: '127.0.0.1', peer: '127.0.0.1', oin: OIN_A, oinHeader: OIN_A });
    });
  });
});

describe('forward-auth log: the original request', () => {
  describe('from a trusted front proxy', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate(undefined, { OINGATE_TRUSTED_PROXIES: '127.0.0.0/8' });
    });
    after(() => gate.close());

    it("logs nginx's X-Original-Method and X-Original-URI, the path without its query", async () => {
      const id = rid();
      // As nginx's auth_request sends it: GET without a body, the OIN in its header.
      const res = await send(gate.url, {
        method: 'GET',
        path: '/check',
        headers: {
          authorization: `Bearer ${tokenFor(OIN_A)}`,
          'x-oin': OIN_A,
          'x-original-method': 'DELETE',
          'x-original-uri': '/api/v1/orders/7?token=secret-in-query',
          'x-request-id': id,
        },
      });
      expect(res.status).to.equal(200);
      const line = lineOf(gate, id);
      expect(line).to.include({ method: 'DELETE', path: '/api/v1/orders/7' });
      expect(JSON.stringify(line)).to.not.include('secret-in-query');
    });

    it("logs Traefik's X-Forwarded-Method and X-Forwarded-Uri", async () => {
      const id = rid();
      const res = await send(gate.url, {
        method: 'GET',
        path: '/auth',
        headers: { 'x-oin': OIN_A, 'x-forwarded-method': 'PUT', 'x-forwarded-uri': '/things/1?x=1', 'x-request-id': id },
      });
      expect(res.status).to.equal(401);
      expect(lineOf(gate, id)).to.include({ method: 'PUT', path: '/things/1', reason: 'token_missing' });
    });

    it('logs the decision request itself when the proxy names no original', async () => {
      const id = rid();
      await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { path: '/check?q=1', headers: { 'x-request-id': id } });
      expect(lineOf(gate, id)).to.include({ method: 'POST', path: '/check' });
    });

    it('only logs the original: the decision is the same whatever it names', async () => {
      const id = rid();
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), {
        headers: { 'x-original-method': 'GET', 'x-original-uri': '/admin', 'x-request-id': id },
      });
      expect(res.status).to.equal(200);
      expect(lineOf(gate, id)).to.include({ outcome: 'allowed', path: '/admin' });
    });
  });

  describe('from an untrusted peer', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate();
    });
    after(() => gate.close());

    it('ignores X-Original-* and X-Forwarded-Method/-Uri, logging the request as it came', async () => {
      const id = rid();
      await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), {
        path: '/check',
        headers: { 'x-original-method': 'DELETE', 'x-original-uri': '/forged', 'x-forwarded-uri': '/forged-too', 'x-request-id': id },
      });
      expect(lineOf(gate, id)).to.include({ method: 'POST', path: '/check' });
    });
  });

  describe('in proxy mode', () => {
    let upstream: Upstream;
    let gate: Gate;
    before(async () => {
      upstream = await startUpstream();
      gate = await startGate(undefined, { OINGATE_TRUSTED_PROXIES: '127.0.0.0/8', OINGATE_UPSTREAM: upstream.url });
    });
    after(async () => {
      await gate.close();
      await upstream.close();
    });

    it('logs the request it forwards, not what X-Original-URI says', async () => {
      const id = rid();
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), {
        path: '/real/path',
        headers: { 'x-original-uri': '/other', 'x-original-method': 'DELETE', 'x-request-id': id },
      });
      expect(res.status).to.equal(200);
      expect(lineOf(gate, id)).to.include({ method: 'POST', path: '/real/path' });
    });
  });
});
