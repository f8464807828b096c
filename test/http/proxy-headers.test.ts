import { expect } from 'chai';
import { parseCidrList } from '../../src/ip/cidr.ts';
import { openUpstreamProxy, type UpstreamProxy } from '../../src/http/proxy.ts';
import { call, OIN_A, OIN_B, send, startGate, tokenFor, type Gate } from '../support/gate.ts';
import { rawExchange } from '../support/socket.ts';
import { headerNames, headerValues, startProxyFront, startUpstream, type RecordedRequest, type Upstream } from '../support/upstream.ts';

function only(upstream: Upstream): RecordedRequest {
  expect(upstream.requests, 'requests the upstream received').to.have.length(1);
  return upstream.requests[0] as RecordedRequest;
}

describe('proxy mode: headers a client may not pass to the upstream', () => {
  let upstream: Upstream;
  let gate: Gate;
  before(async () => {
    upstream = await startUpstream();
    gate = await startGate(undefined, { OINGATE_UPSTREAM: upstream.url });
  });
  after(async () => {
    await gate?.close();
    await upstream?.close();
  });
  beforeEach(() => upstream.reset());

  it('strips X_Authenticated_Oin, which CGI/WSGI upstreams would read as x-authenticated-oin', async () => {
    const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { X_Authenticated_Oin: OIN_B } });
    expect(res.status).to.equal(200);
    const seen = only(upstream);
    expect(headerNames(seen).filter((name) => name.replaceAll('_', '-').startsWith('x-authenticated'))).to.deep.equal(['x-authenticated-oin']);
    expect(headerValues(seen, 'x-authenticated-oin')).to.deep.equal([OIN_A]);
  });

  it('strips every header whose name starts with x-authenticated, with or without a dash after it', async () => {
    const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), {
      headers: {
        'x-authenticated': 'yes',
        'X-AuthenticatedOin': OIN_B,
        'x-authenticated-claim-sub': 'mallory',
        'X-Authenticated_Oin': OIN_B,
        'x_authenticated-oin': OIN_B,
      },
    });
    expect(res.status).to.equal(200);
    const names = headerNames(only(upstream));
    expect(names.filter((name) => name.replaceAll('_', '-').startsWith('x-authenticated'))).to.deep.equal(['x-authenticated-oin']);
  });

  it('drops every other header with an underscore in its name, and keeps its dashed neighbour', async () => {
    const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), {
      headers: { x_tenant: 'b', 'X_Forwarded_For': '10.0.0.1', 'x-tenant': 'a', my_header: '1' },
    });
    expect(res.status).to.equal(200);
    const seen = only(upstream);
    expect(headerNames(seen).filter((name) => name.includes('_'))).to.deep.equal([]);
    expect(headerValues(seen, 'x-tenant')).to.deep.equal(['a']);
    expect(headerValues(seen, 'x-forwarded-for')).to.deep.equal(['127.0.0.1']);
  });

  it("removes the client's Forwarded, X-Real-IP and True-Client-IP", async () => {
    const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), {
      headers: { forwarded: 'for=10.0.0.1;proto=https', 'X-Real-IP': '10.0.0.1', 'True-Client-IP': '10.0.0.1' },
    });
    expect(res.status).to.equal(200);
    const names = headerNames(only(upstream));
    for (const name of ['forwarded', 'x-real-ip', 'true-client-ip']) expect(names, name).not.to.include(name);
  });

  it('strips them from raw header lines too, whatever their case', async () => {
    const body = `{"oin":"${OIN_A}"}`;
    const raw =
      `POST /raw HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${tokenFor(OIN_A)}\r\n` +
      `X_AUTHENTICATED_OIN: ${OIN_B}\r\nx-AUTHENTICATED-oin: ${OIN_B}\r\nFORWARDED: for=1.2.3.4\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    const answer = await rawExchange(gate.url, raw);
    expect(answer.text).to.match(/^HTTP\/1\.1 200 /);
    const seen = only(upstream);
    expect(headerValues(seen, 'x-authenticated-oin')).to.deep.equal([OIN_A]);
    expect(headerNames(seen)).not.to.include('forwarded');
    expect(headerNames(seen).filter((name) => name.includes('_'))).to.deep.equal([]);
  });

  it('still forwards a GET with the OIN header alone', async () => {
    const res = await send(gate.url, { method: 'GET', headers: { 'x-oin': OIN_A, authorization: `Bearer ${tokenFor(OIN_A)}`, x_oin: OIN_B } });
    expect(res.status).to.equal(200);
    expect(headerValues(only(upstream), 'x-oin')).to.deep.equal([OIN_A]);
  });
});

describe('proxy: extra headers set by the gate', () => {
  let upstream: Upstream;
  let proxy: UpstreamProxy;
  let front: Awaited<ReturnType<typeof startProxyFront>>;
  before(async () => {
    upstream = await startUpstream();
    proxy = await openUpstreamProxy({ upstream: new URL(upstream.url), timeoutMs: 2_000, trustedProxies: parseCidrList([]) });
    front = await startProxyFront(proxy, OIN_A, ['x-authenticated-claim-sub', 'alice', 'x-authenticated-claim-level', '3']);
  });
  after(async () => {
    await front?.close();
    await proxy?.close();
    await upstream?.close();
  });

  it("appends them after x-authenticated-oin, and the client's own versions never arrive", async () => {
    const res = await send(front.url, {
      headers: { 'content-type': 'application/json', 'x-authenticated-claim-sub': 'mallory', X_Authenticated_Claim_Level: '9' },
      body: '{}',
    });
    expect(res.status).to.equal(200);
    const seen = only(upstream);
    const names = headerNames(seen);
    const at = names.indexOf('x-authenticated-oin');
    expect(names.slice(at, at + 3)).to.deep.equal(['x-authenticated-oin', 'x-authenticated-claim-sub', 'x-authenticated-claim-level']);
    expect(headerValues(seen, 'x-authenticated-claim-sub')).to.deep.equal(['alice']);
    expect(headerValues(seen, 'x-authenticated-claim-level')).to.deep.equal(['3']);
    expect(names.filter((name) => name.includes('_'))).to.deep.equal([]);
  });
});
