/**
 * Forward-auth mode (no OINGATE_UPSTREAM) over real sockets: every row of the
 * contract's status table that applies without an upstream, and hostile
 * inputs for each. Every refusal is checked for the contract's JSON shape,
 * its x-request-id, and the precise reason in the decision log line (which
 * the caller never sees).
 */
import { expect } from 'chai';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { connect } from 'node:net';
import {
  call,
  eventually,
  OIN_A,
  OIN_B,
  SECRET_A,
  send,
  signToken,
  startGate,
  tokenFor,
  twoTenants,
  type Gate,
  type RequestOptions,
  type Response,
  type TenantSpec,
} from '../support/gate.ts';

const OIN_DISABLED = '00000001000000000003';
const OIN_NARROW = '00000001000000000004';
const OIN_RSA = '00000001000000000005';
const OIN_UNKNOWN = '00000001000000000099';
const OIN_WAN = '00000001000000000006';
const OIN_LAN = '00000001000000000007';
const OIN_V4 = '00000001000000000008';
const OIN_V6 = '00000001000000000009';
const SECRET_DISABLED = 'tenant-c-secret-0123456789abcdefghijkl';
const SECRET_NARROW = 'tenant-n-secret-0123456789abcdefghijkl';
const SECRET_WAN = 'tenant-w-secret-0123456789abcdefghijkl';
const SECRET_LAN = 'tenant-l-secret-0123456789abcdefghijkl';
const SECRET_V4 = 'tenant-4-secret-0123456789abcdefghijkl';
const SECRET_V6 = 'tenant-6-secret-0123456789abcdefghijkl';

const RSA = generateKeyPairSync('rsa', { modulusLength: 2048 });
const RSA_PUBLIC_PEM = RSA.publicKey.export({ type: 'spki', format: 'pem' }).toString();

function mainTenants(): TenantSpec[] {
  return [
    ...twoTenants(),
    { oin: OIN_DISABLED, enabled: false, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'c1', alg: 'HS256', secret: SECRET_DISABLED }] },
    { oin: OIN_NARROW, cidrs: ['127.0.0.2/32'], keys: [{ kid: 'n1', alg: 'HS256', secret: SECRET_NARROW }] },
    { oin: OIN_RSA, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'r1', alg: 'RS256', publicKey: RSA_PUBLIC_PEM }] },
  ];
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

function b64url(value: string): string {
  return Buffer.from(value).toString('base64url');
}

/** A hand-made HS256 JWS: header and payload text are used exactly as given. */
function handSigned(header: Record<string, unknown>, payload: string, secret: string | Buffer): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function tokenOf(oin: string, secret: string, kid: string, claims: Record<string, unknown> = {}): string {
  return signToken({ oin, ...claims }, secret, { algorithm: 'HS256', keyid: kid });
}

/** The headers and body of nginx auth_request: a GET with the OIN header only. */
function authRequest(oin: string, token: string | undefined, extra: Record<string, string | string[]> = {}): RequestOptions {
  return {
    method: 'GET',
    path: '/api/orders?x=1',
    headers: { 'x-oin': oin, ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}), ...extra },
  };
}

/** The contract's refusal: status, JSON shape, request id in header and body, no authenticated OIN. */
function expectRefusal(res: Response, status: number, error: string): Record<string, unknown> {
  expect(res.status, res.text).to.equal(status);
  expect(res.headers['content-type']).to.match(/^application\/json(;|$)/);
  const body = res.json();
  expect(Object.keys(body).sort()).to.deep.equal(['error', 'message', 'requestId']);
  expect(body['error']).to.equal(error);
  expect(body['message']).to.be.a('string').and.not.equal('');
  expect(body['requestId']).to.be.a('string').and.equal(res.headers['x-request-id']);
  expect(res.headers['x-authenticated-oin']).to.equal(undefined);
  if (status === 401) expect(res.headers['www-authenticate']).to.equal('Bearer');
  else expect(res.headers['www-authenticate']).to.equal(undefined);
  return body;
}

/** The decision log line of the last request: the precise reason, tied to the response by its id. */
function expectLogged(gate: Gate, res: Response, reason: string, extra: Record<string, unknown> = {}): void {
  const line = gate.logs.last();
  expect(line, 'decision log line').to.not.equal(undefined);
  expect(line?.['requestId']).to.equal(res.headers['x-request-id']);
  expect(line?.['reason']).to.equal(reason);
  expect(line?.['status']).to.equal(res.status);
  expect(line?.['outcome']).to.equal(res.status === 200 ? 'allowed' : 'refused');
  for (const [key, value] of Object.entries(extra)) expect(line?.[key], key).to.equal(value);
  // The caller never learns the precise reason (e.g. "media_type" is part of
  // the code "unsupported_media_type", so look for it as a whole value).
  if (res.status !== 200) {
    expect(res.text).to.not.include(`"${reason}"`);
    expect(Object.values(res.json())).to.not.include(reason);
    expect(JSON.stringify(res.headers)).to.not.include(reason);
  }
}

function expectAllowed(gate: Gate, res: Response, oin: string, extra: Record<string, unknown> = {}): void {
  expect(res.status, res.text).to.equal(200);
  expect(res.headers['x-authenticated-oin']).to.equal(oin);
  expect(res.headers['x-request-id']).to.be.a('string').and.not.equal('');
  expectLogged(gate, res, 'ok', { oin, ...extra });
}

/** The raw bytes a server answers to raw request bytes, until it closes. */
function rawExchange(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), 3_000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(request);
  });
}

describe('forward-auth mode', () => {
  let gate: Gate;

  before(async () => {
    gate = await startGate(mainTenants());
  });
  after(() => gate?.close());

  describe('200: an allowed request', () => {
    it('answers 200 with x-authenticated-oin for a JSON body naming the OIN', async () => {
      const res = await call(gate.url, { oin: OIN_A, order: 1 }, tokenFor(OIN_A));
      expectAllowed(gate, res, OIN_A, { clientIp: '127.0.0.1' });
      expect(res.text).to.equal('');
      expect(res.headers['content-length']).to.equal('0');
      expect(res.headers['transfer-encoding']).to.equal(undefined);
    });

    it('answers 200 to a GET with only the x-oin header and no body, as nginx auth_request sends it', async () => {
      const res = await send(gate.url, authRequest(OIN_B, tokenFor(OIN_B)));
      expectAllowed(gate, res, OIN_B);
    });

    it('answers 200 when header and body name the same OIN', async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-oin': OIN_A } });
      expectAllowed(gate, res, OIN_A);
    });

    it('accepts a body nested 64 levels deep', async () => {
      const body = `{"oin":"${OIN_A}","x":${'['.repeat(63)}${']'.repeat(63)}}`;
      expectAllowed(gate, await call(gate.url, body, tokenFor(OIN_A)), OIN_A);
    });

    it('accepts a token expired by less than the 30 s clock tolerance', async () => {
      const now = nowSeconds();
      const res = await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, iat: now - 100, exp: now - 5 }));
      expectAllowed(gate, res, OIN_A);
    });

    it('accepts a token without kid, trying the tenant\'s keys', async () => {
      const token = signToken({ oin: OIN_A }, SECRET_A, { algorithm: 'HS256' });
      expectAllowed(gate, await call(gate.url, { oin: OIN_A }, token), OIN_A);
    });

    it('accepts the RS256 tenant\'s own RS256 token', async () => {
      const token = signToken({ oin: OIN_RSA }, RSA.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { algorithm: 'RS256', keyid: 'r1' });
      expectAllowed(gate, await call(gate.url, { oin: OIN_RSA }, token), OIN_RSA);
    });
  });

  describe('400 bad_request: the body or the OIN is malformed', () => {
    const token = (): string => tokenFor(OIN_A);

    it('refuses a body that is not valid JSON', async () => {
      const res = await call(gate.url, `{"oin":"${OIN_A}",`, token());
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'body_invalid_json');
    });

    it('refuses a body that is not valid JSON even when the token is garbage too', async () => {
      const res = await call(gate.url, '{', 'garbage');
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'body_invalid_json');
    });

    it('refuses a body nested 65 levels deep', async () => {
      const res = await call(gate.url, `{"oin":"${OIN_A}","x":${'['.repeat(64)}${']'.repeat(64)}}`, token());
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'body_too_deep');
    });

    it('refuses a body nested far too deep without falling over', async () => {
      const res = await call(gate.url, `{"oin":"${OIN_A}","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, token());
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'body_too_deep');
    });

    it('refuses a request without any OIN', async () => {
      const res = await call(gate.url, { tenant: OIN_A }, token());
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'oin_missing');
      const get = await send(gate.url, { method: 'GET', headers: { authorization: `Bearer ${token()}` } });
      expectRefusal(get, 400, 'bad_request');
      expectLogged(gate, get, 'oin_missing');
    });

    it('refuses a numeric OIN in the body', async () => {
      const res = await call(gate.url, '{"oin": 1234}', token());
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'oin_not_string');
    });

    it('refuses an OIN that does not match the pattern', async () => {
      for (const oin of ['1234', `${OIN_A}0`, ` ${OIN_A}`, 'abcdefghijabcdefghij']) {
        const res = await call(gate.url, { oin }, token());
        expectRefusal(res, 400, 'bad_request');
        expectLogged(gate, res, 'oin_pattern');
      }
      const header = await send(gate.url, authRequest('0000000100000000000x', token()));
      expectRefusal(header, 400, 'bad_request');
      expectLogged(gate, header, 'oin_pattern');
    });

    it('refuses a body whose oin key appears twice', async () => {
      const res = await call(gate.url, `{"oin":"${OIN_A}","oin":"${OIN_B}"}`, token());
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'body_duplicate_key');
    });

    it('refuses a body whose oin key appears twice, once escaped as o\\u0069n', async () => {
      const body = `{"oin":"${OIN_A}","o\\u0069n":"${OIN_B}"}`;
      expect(body).to.include('\\u0069'); // the escape really is in the bytes sent
      const res = await call(gate.url, body, token());
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'body_duplicate_key');
    });

    it('refuses header and body that disagree', async () => {
      const res = await call(gate.url, { oin: OIN_A }, token(), { headers: { 'x-oin': OIN_B } });
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'oin_conflict');
    });

    it('refuses two x-oin header lines, even when they agree', async () => {
      for (const values of [[OIN_A, OIN_B], [OIN_A, OIN_A]]) {
        const res = await send(gate.url, authRequest(OIN_A, token(), { 'x-oin': values }));
        expectRefusal(res, 400, 'bad_request');
        expectLogged(gate, res, 'oin_header_repeated');
      }
    });

    it('refuses a body with invalid UTF-8 bytes', async () => {
      const body = Buffer.concat([Buffer.from(`{"oin":"${OIN_A}","name":"`), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
      // send(), not call(): call() would JSON.stringify a Buffer.
      const res = await send(gate.url, { headers: { 'content-type': 'application/json', authorization: `Bearer ${token()}` }, body });
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'body_invalid_json');
    });

    it('refuses an absolute-form request target', async () => {
      const res = await send(gate.url, { ...authRequest(OIN_A, token()), path: `${gate.url}/api` });
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'request_target');
    });
  });

  describe('401 unauthorized: no valid bearer token', () => {
    async function expectUnauthorized(res: Response, reason: string, g: Gate = gate): Promise<void> {
      expectRefusal(res, 401, 'unauthorized');
      expectLogged(g, res, reason);
    }

    it('refuses a request without a token', async () => {
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, undefined), 'token_missing');
      await expectUnauthorized(await send(gate.url, authRequest(OIN_A, undefined)), 'token_missing');
    });

    it('refuses Basic credentials', async () => {
      const res = await call(gate.url, { oin: OIN_A }, undefined, { headers: { authorization: 'Basic dXNlcjpwYXNzd29yZA==' } });
      await expectUnauthorized(res, 'token_malformed');
    });

    it('refuses a garbage token', async () => {
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, 'garbage'), 'token_malformed');
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, 'a.b.c'), 'token_malformed');
    });

    it('refuses a token with a tampered payload', async () => {
      const [header, , signature] = tokenFor(OIN_A).split('.');
      const payload = b64url(JSON.stringify({ oin: OIN_A, iat: nowSeconds(), exp: nowSeconds() + 3000 }));
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, `${header}.${payload}.${signature}`), 'token_bad_signature');
    });

    it('refuses a token expired beyond the 30 s tolerance', async () => {
      const now = nowSeconds();
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, iat: now - 300, exp: now - 60 })), 'token_expired');
    });

    it('refuses a token without exp', async () => {
      const token = handSigned({ alg: 'HS256', typ: 'JWT', kid: 'a1' }, JSON.stringify({ oin: OIN_A, iat: nowSeconds() }), SECRET_A);
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, token), 'token_no_exp');
    });

    it('refuses a token whose exp is 1e400 (Infinity)', async () => {
      const payload = `{"oin":"${OIN_A}","iat":${nowSeconds()},"exp":1e400}`;
      const token = handSigned({ alg: 'HS256', typ: 'JWT', kid: 'a1' }, payload, SECRET_A);
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, token), 'token_no_exp');
    });

    it('refuses an alg none token', async () => {
      const unsigned = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify({ oin: OIN_A, exp: nowSeconds() + 60 }))}.`;
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, unsigned), 'token_malformed');
      const withKid = `${b64url(JSON.stringify({ alg: 'none', kid: 'a1' }))}.${b64url(JSON.stringify({ oin: OIN_A, exp: nowSeconds() + 60 }))}.AAAA`;
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, withKid), 'token_algorithm');
    });

    it('refuses an HS256 token signed with the RS256 tenant\'s public key PEM as the secret', async () => {
      const payload = JSON.stringify({ oin: OIN_RSA, iat: nowSeconds(), exp: nowSeconds() + 60 });
      const withKid = handSigned({ alg: 'HS256', typ: 'JWT', kid: 'r1' }, payload, RSA_PUBLIC_PEM);
      await expectUnauthorized(await call(gate.url, { oin: OIN_RSA }, withKid), 'token_algorithm');
      const withoutKid = handSigned({ alg: 'HS256', typ: 'JWT' }, payload, RSA_PUBLIC_PEM);
      const res = await call(gate.url, { oin: OIN_RSA }, withoutKid);
      expectRefusal(res, 401, 'unauthorized');
      expect(gate.logs.last()?.['reason']).to.be.oneOf(['token_unknown_kid', 'token_algorithm']);
    });

    it('refuses a kid ../../dev/null token signed with an empty secret', async () => {
      const payload = JSON.stringify({ oin: OIN_A, iat: nowSeconds(), exp: nowSeconds() + 60 });
      const token = handSigned({ alg: 'HS256', typ: 'JWT', kid: '../../dev/null' }, payload, '');
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, token), 'token_unknown_kid');
    });

    it("refuses tenant A's token presented for tenant B", async () => {
      await expectUnauthorized(await call(gate.url, { oin: OIN_B }, tokenFor(OIN_A)), 'token_unknown_kid');
      // Signed with A's secret, claiming B and naming B's kid: a bad signature.
      await expectUnauthorized(await call(gate.url, { oin: OIN_B }, tokenOf(OIN_B, SECRET_A, 'b1')), 'token_bad_signature');
      // Without a kid, B's keys are tried, and none fits.
      const noKid = signToken({ oin: OIN_B }, SECRET_A, { algorithm: 'HS256' });
      await expectUnauthorized(await call(gate.url, { oin: OIN_B }, noKid), 'token_bad_signature');
    });

    it('refuses a token that is not yet valid (nbf in the future)', async () => {
      const token = signToken({ oin: OIN_A, nbf: nowSeconds() + 120 });
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, token), 'token_not_yet_valid');
    });

    it('refuses a token issued in the future (iat)', async () => {
      const now = nowSeconds();
      const token = signToken({ oin: OIN_A, iat: now + 120, exp: now + 600 });
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, token), 'token_iat_future');
    });

    it('refuses a token living longer than the default 86400 s', async () => {
      const now = nowSeconds();
      const token = signToken({ oin: OIN_A, iat: now, exp: now + 86_401 });
      await expectUnauthorized(await call(gate.url, { oin: OIN_A }, token), 'token_lifetime');
    });

    describe('with OINGATE_MAX_TOKEN_LIFETIME=60', () => {
      let short: Gate;
      before(async () => {
        short = await startGate(twoTenants(), { OINGATE_MAX_TOKEN_LIFETIME: '60' });
      });
      after(() => short?.close());

      it('refuses a token living longer than 60 s', async () => {
        const now = nowSeconds();
        await expectUnauthorized(await call(short.url, { oin: OIN_A }, signToken({ oin: OIN_A, iat: now, exp: now + 61 })), 'token_lifetime', short);
        // The harness's default ten-minute token, too.
        await expectUnauthorized(await call(short.url, { oin: OIN_A }, tokenFor(OIN_A)), 'token_lifetime', short);
        // Without iat the lifetime counts from now.
        const noIat = handSigned({ alg: 'HS256', kid: 'a1' }, JSON.stringify({ oin: OIN_A, exp: now + 600 }), SECRET_A);
        await expectUnauthorized(await call(short.url, { oin: OIN_A }, noIat), 'token_lifetime', short);
      });

      it('accepts a token living exactly 60 s', async () => {
        const now = nowSeconds();
        expectAllowed(short, await call(short.url, { oin: OIN_A }, signToken({ oin: OIN_A, iat: now, exp: now + 60 })), OIN_A);
      });
    });

    describe('with OINGATE_ISSUER and OINGATE_AUDIENCE set', () => {
      let strict: Gate;
      const ISSUER = 'https://idp.example.nl';
      const AUDIENCE = 'oingate-test';
      before(async () => {
        strict = await startGate(twoTenants(), { OINGATE_ISSUER: ISSUER, OINGATE_AUDIENCE: AUDIENCE });
      });
      after(() => strict?.close());

      it('accepts a token with the configured issuer and audience', async () => {
        const token = signToken({ oin: OIN_A, iss: ISSUER, aud: AUDIENCE });
        expectAllowed(strict, await call(strict.url, { oin: OIN_A }, token), OIN_A);
      });

      it('refuses a token from another issuer, or without one', async () => {
        const other = signToken({ oin: OIN_A, iss: 'https://evil.example', aud: AUDIENCE });
        await expectUnauthorized(await call(strict.url, { oin: OIN_A }, other), 'token_issuer', strict);
        await expectUnauthorized(await call(strict.url, { oin: OIN_A }, signToken({ oin: OIN_A, aud: AUDIENCE })), 'token_issuer', strict);
      });

      it('refuses a token for another audience, or without one', async () => {
        const other = signToken({ oin: OIN_A, iss: ISSUER, aud: 'someone-else' });
        await expectUnauthorized(await call(strict.url, { oin: OIN_A }, other), 'token_audience', strict);
        await expectUnauthorized(await call(strict.url, { oin: OIN_A }, signToken({ oin: OIN_A, iss: ISSUER })), 'token_audience', strict);
      });
    });
  });

  describe('403 forbidden: unknown or disabled tenant, foreign IP, wrong tenant claim', () => {
    it('refuses an unknown tenant, with 403 rather than 401 even without a token', async () => {
      const res = await call(gate.url, { oin: OIN_UNKNOWN }, tokenFor(OIN_A));
      expectRefusal(res, 403, 'forbidden');
      expectLogged(gate, res, 'tenant_unknown', { oin: OIN_UNKNOWN });
      const noToken = await call(gate.url, { oin: OIN_UNKNOWN }, undefined);
      expectRefusal(noToken, 403, 'forbidden');
      expectLogged(gate, noToken, 'tenant_unknown');
    });

    it('refuses a disabled tenant, even with its own valid token', async () => {
      const res = await call(gate.url, { oin: OIN_DISABLED }, tokenOf(OIN_DISABLED, SECRET_DISABLED, 'c1'));
      expectRefusal(res, 403, 'forbidden');
      expectLogged(gate, res, 'tenant_disabled');
    });

    it('refuses a client IP outside the tenant\'s CIDRs, even with its own valid token', async () => {
      const res = await call(gate.url, { oin: OIN_NARROW }, tokenOf(OIN_NARROW, SECRET_NARROW, 'n1'), { localAddress: '127.0.0.3' });
      expectRefusal(res, 403, 'forbidden');
      expectLogged(gate, res, 'ip_not_whitelisted', { clientIp: '127.0.0.3' });
    });

    it('refuses a foreign client IP with 403 whatever its token: an outsider never learns about tokens', async () => {
      for (const token of [undefined, 'garbage']) {
        const res = await call(gate.url, { oin: OIN_NARROW }, token, { localAddress: '127.0.0.3' });
        expectRefusal(res, 403, 'forbidden');
        expectLogged(gate, res, 'ip_not_whitelisted');
      }
    });

    it('allows the same tenant from its whitelisted 127.0.0.2', async () => {
      const res = await call(gate.url, { oin: OIN_NARROW }, tokenOf(OIN_NARROW, SECRET_NARROW, 'n1'), { localAddress: '127.0.0.2' });
      expectAllowed(gate, res, OIN_NARROW, { clientIp: '127.0.0.2' });
    });

    it('does not believe X-Forwarded-For from an untrusted peer (no trusted proxies by default)', async () => {
      const token = tokenOf(OIN_NARROW, SECRET_NARROW, 'n1');
      const res = await call(gate.url, { oin: OIN_NARROW }, token, { localAddress: '127.0.0.3', headers: { 'x-forwarded-for': '127.0.0.2' } });
      expectRefusal(res, 403, 'forbidden');
      expectLogged(gate, res, 'ip_not_whitelisted', { clientIp: '127.0.0.3' });
      // Nor is a malformed one from an untrusted peer a reason to refuse: it is ignored.
      const ignored = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'x-forwarded-for': 'unknown, 010.0.0.1' } });
      expectAllowed(gate, ignored, OIN_A, { clientIp: '127.0.0.1' });
    });

    it('refuses a token whose tenant claim is a number', async () => {
      const res = await call(gate.url, { oin: OIN_A }, signToken({ oin: Number(OIN_A) }));
      expectRefusal(res, 403, 'forbidden');
      expectLogged(gate, res, 'claim_mismatch');
    });

    it('refuses a token whose tenant claim is an array holding the OIN', async () => {
      const res = await call(gate.url, { oin: OIN_A }, signToken({ oin: [OIN_A] }));
      expectRefusal(res, 403, 'forbidden');
      expectLogged(gate, res, 'claim_mismatch');
    });

    it('refuses a token whose tenant claim names another tenant', async () => {
      const res = await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_B }));
      expectRefusal(res, 403, 'forbidden');
      expectLogged(gate, res, 'claim_mismatch');
    });

    it('refuses a token whose tenant claim differs by whitespace, or is missing', async () => {
      for (const claims of [{ oin: ` ${OIN_A}` }, { oin: `${OIN_A} ` }, { sub: OIN_A }]) {
        const res = await call(gate.url, { oin: OIN_A }, signToken(claims));
        expectRefusal(res, 403, 'forbidden');
        expectLogged(gate, res, 'claim_mismatch');
      }
    });

    it('gives every 403 the same body apart from requestId, and the same content-type', async () => {
      const narrow = tokenOf(OIN_NARROW, SECRET_NARROW, 'n1');
      const cases: Array<[string, () => Promise<Response>]> = [
        ['tenant_unknown', () => call(gate.url, { oin: OIN_UNKNOWN }, tokenFor(OIN_A))],
        ['tenant_unknown', () => send(gate.url, authRequest(OIN_UNKNOWN, undefined))],
        ['tenant_disabled', () => call(gate.url, { oin: OIN_DISABLED }, 'garbage')],
        ['ip_not_whitelisted', () => call(gate.url, { oin: OIN_NARROW }, narrow, { localAddress: '127.0.0.3' })],
        ['ip_not_whitelisted', () => send(gate.url, { ...authRequest(OIN_NARROW, narrow), localAddress: '127.0.0.3' })],
        ['claim_mismatch', () => call(gate.url, { oin: OIN_A }, signToken({ oin: Number(OIN_A) }))],
        ['claim_mismatch', () => call(gate.url, { oin: OIN_A }, signToken({ oin: [OIN_A] }))],
        ['claim_mismatch', () => send(gate.url, authRequest(OIN_A, signToken({ oin: OIN_B })))],
      ];
      const bodies: Array<Record<string, unknown>> = [];
      const types = new Set<unknown>();
      const ids = new Set<unknown>();
      for (const [reason, request] of cases) {
        const res = await request();
        const body = expectRefusal(res, 403, 'forbidden');
        expectLogged(gate, res, reason);
        ids.add(body['requestId']);
        delete body['requestId'];
        bodies.push(body);
        types.add(res.headers['content-type']);
      }
      expect(ids.size).to.equal(cases.length);
      for (const body of bodies) expect(body).to.deep.equal(bodies[0]);
      expect([...types]).to.have.length(1);
    });
  });

  describe('413 payload_too_large: body over OINGATE_BODY_LIMIT', () => {
    let small: Gate;
    before(async () => {
      small = await startGate(twoTenants(), { OINGATE_BODY_LIMIT: '1000' });
    });
    after(() => small?.close());

    /** Valid JSON naming tenant A, exactly `size` bytes long. */
    function bodyOf(size: number): string {
      const head = `{"oin":"${OIN_A}","pad":"`;
      return `${head}${'x'.repeat(size - head.length - 2)}"}`;
    }

    it('accepts a body of exactly the limit', async () => {
      const body = bodyOf(1000);
      expect(Buffer.byteLength(body)).to.equal(1000);
      expectAllowed(small, await call(small.url, body, tokenFor(OIN_A)), OIN_A);
    });

    it('refuses a body one byte over the limit, sent with Content-Length', async () => {
      const body = bodyOf(1001);
      const res = await call(small.url, body, tokenFor(OIN_A), { headers: { 'content-length': String(Buffer.byteLength(body)) } });
      expectRefusal(res, 413, 'payload_too_large');
      expectLogged(small, res, 'body_too_large');
    });

    it('refuses a body over the limit sent with chunked transfer-encoding', async () => {
      const res = await call(small.url, bodyOf(5000), tokenFor(OIN_A), { headers: { 'transfer-encoding': 'chunked' } });
      expectRefusal(res, 413, 'payload_too_large');
      expectLogged(small, res, 'body_too_large');
    });

    it('refuses an oversized body before looking at the token', async () => {
      const res = await call(small.url, bodyOf(2000), undefined);
      expectRefusal(res, 413, 'payload_too_large');
      expectLogged(small, res, 'body_too_large');
    });
  });

  describe('415 unsupported_media_type: a body that is not plain JSON', () => {
    const body = (): string => JSON.stringify({ oin: OIN_A });

    it('refuses a text/plain body', async () => {
      const res = await call(gate.url, body(), tokenFor(OIN_A), { headers: { 'content-type': 'text/plain' } });
      expectRefusal(res, 415, 'unsupported_media_type');
      expectLogged(gate, res, 'media_type');
    });

    it('refuses a JSON body with content-encoding gzip', async () => {
      const res = await call(gate.url, body(), tokenFor(OIN_A), { headers: { 'content-encoding': 'gzip' } });
      expectRefusal(res, 415, 'unsupported_media_type');
      expectLogged(gate, res, 'content_encoding');
    });

    it('refuses a body without a content-type', async () => {
      const res = await send(gate.url, { headers: { authorization: `Bearer ${tokenFor(OIN_A)}` }, body: body() });
      expect(res.status).to.equal(415);
      expectRefusal(res, 415, 'unsupported_media_type');
      expectLogged(gate, res, 'media_type');
    });

    it('refuses a lookalike media type and a non-UTF-8 charset', async () => {
      for (const type of ['application/jsonx', 'text/json', 'application/json+xml', 'application/json; charset=latin1']) {
        const res = await call(gate.url, body(), tokenFor(OIN_A), { headers: { 'content-type': type } });
        expectRefusal(res, 415, 'unsupported_media_type');
      }
    });

    it('accepts application/vnd.api+json', async () => {
      const res = await call(gate.url, body(), tokenFor(OIN_A), { headers: { 'content-type': 'application/vnd.api+json' } });
      expectAllowed(gate, res, OIN_A);
    });

    it('accepts application/json; charset=utf-8 and content-encoding identity', async () => {
      const res = await call(gate.url, body(), tokenFor(OIN_A), {
        headers: { 'content-type': 'application/json; charset=utf-8', 'content-encoding': 'identity' },
      });
      expectAllowed(gate, res, OIN_A);
    });
  });

  describe('503 unavailable: no whitelist loaded yet', () => {
    let empty: Gate;
    before(async () => {
      empty = await startGate(null);
    });
    after(() => empty?.close());

    it('answers 503 while no whitelist file exists, then 200 once one is written, without a restart', async () => {
      for (const request of [() => call(empty.url, { oin: OIN_A }, tokenFor(OIN_A)), () => call(empty.url, '{', 'garbage')]) {
        const res = await request();
        expectRefusal(res, 503, 'unavailable');
        expectLogged(empty, res, 'not_ready');
      }
      await empty.writeWhitelist(twoTenants());
      await eventually(async () => {
        const res = await call(empty.url, { oin: OIN_A }, tokenFor(OIN_A));
        expect(res.status).to.equal(200);
      }, 5_000);
      expectAllowed(empty, await send(empty.url, authRequest(OIN_B, tokenFor(OIN_B))), OIN_B);
    });
  });

  describe('X-Forwarded-For from a trusted proxy (OINGATE_TRUSTED_PROXIES=127.0.0.1/32)', () => {
    let proxied: Gate;
    const wan = (): string => tokenOf(OIN_WAN, SECRET_WAN, 'w1');
    const lan = (): string => tokenOf(OIN_LAN, SECRET_LAN, 'l1');
    const viaProxy = (oin: string, token: string, xff: string | string[], from = '127.0.0.1'): Promise<Response> =>
      send(proxied.url, { ...authRequest(oin, token, { 'x-forwarded-for': xff }), localAddress: from });

    before(async () => {
      proxied = await startGate(
        [
          { oin: OIN_WAN, cidrs: ['203.0.113.0/24'], keys: [{ kid: 'w1', alg: 'HS256', secret: SECRET_WAN }] },
          { oin: OIN_LAN, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'l1', alg: 'HS256', secret: SECRET_LAN }] },
        ],
        { OINGATE_TRUSTED_PROXIES: '127.0.0.1/32' },
      );
    });
    after(() => proxied?.close());

    it('judges a request from the proxy by its X-Forwarded-For address', async () => {
      expectAllowed(proxied, await viaProxy(OIN_WAN, wan(), '203.0.113.7'), OIN_WAN, { clientIp: '203.0.113.7' });
      const refused = await viaProxy(OIN_LAN, lan(), '203.0.113.7');
      expectRefusal(refused, 403, 'forbidden');
      expectLogged(proxied, refused, 'ip_not_whitelisted', { clientIp: '203.0.113.7' });
    });

    it('judges a request from the proxy without X-Forwarded-For by the peer', async () => {
      const res = await send(proxied.url, { ...authRequest(OIN_LAN, lan()), localAddress: '127.0.0.1' });
      expectAllowed(proxied, res, OIN_LAN, { clientIp: '127.0.0.1' });
    });

    it('walks a chain from the right, skipping trusted proxies', async () => {
      expectAllowed(proxied, await viaProxy(OIN_WAN, wan(), '203.0.113.7, 127.0.0.1'), OIN_WAN, { clientIp: '203.0.113.7' });
      const refused = await viaProxy(OIN_LAN, lan(), '203.0.113.7, 127.0.0.1');
      expectRefusal(refused, 403, 'forbidden');
      expectLogged(proxied, refused, 'ip_not_whitelisted', { clientIp: '203.0.113.7' });
    });

    it('ignores what the client wrote left of the nearest untrusted address', async () => {
      // The client spoofs 127.0.0.5 in front; the proxy appended the real 203.0.113.7.
      const refused = await viaProxy(OIN_LAN, lan(), '127.0.0.5, 203.0.113.7');
      expectRefusal(refused, 403, 'forbidden');
      expectLogged(proxied, refused, 'ip_not_whitelisted', { clientIp: '203.0.113.7' });
      expectAllowed(proxied, await viaProxy(OIN_WAN, wan(), '127.0.0.5, 203.0.113.7'), OIN_WAN);
    });

    it('reads repeated X-Forwarded-For lines as one chain', async () => {
      expectAllowed(proxied, await viaProxy(OIN_WAN, wan(), ['203.0.113.7', '127.0.0.1']), OIN_WAN, { clientIp: '203.0.113.7' });
    });

    it('counts ::ffff:203.0.113.7 as 203.0.113.7', async () => {
      expectAllowed(proxied, await viaProxy(OIN_WAN, wan(), '::ffff:203.0.113.7'), OIN_WAN, { clientIp: '203.0.113.7' });
    });

    for (const xff of ['010.0.0.1', '127.1', '0x7f.0.0.1', 'unknown', '203.0.113.7:443', '203.0.113.7, ', '203.0.113.7, unknown', '203.0.113.7,,127.0.0.1', '[::1]', 'fe80::1%eth0']) {
      it(`fails closed with 403 on the malformed entry ${JSON.stringify(xff)}`, async () => {
        // Tenant LAN would be allowed if the peer were used as a fallback.
        for (const [oin, token] of [[OIN_LAN, lan()], [OIN_WAN, wan()]] as const) {
          const res = await viaProxy(oin, token, xff);
          expectRefusal(res, 403, 'forbidden');
          expectLogged(proxied, res, 'forwarded_for_malformed');
        }
      });
    }

    it('ignores a malformed entry left of the client, which neither helps nor harms', async () => {
      expectAllowed(proxied, await viaProxy(OIN_WAN, wan(), 'unknown, 203.0.113.7'), OIN_WAN, { clientIp: '203.0.113.7' });
      expectAllowed(proxied, await viaProxy(OIN_WAN, wan(), ', 010.0.0.1, 203.0.113.7, 127.0.0.1'), OIN_WAN, { clientIp: '203.0.113.7' });
      const refused = await viaProxy(OIN_LAN, lan(), 'unknown, 203.0.113.7');
      expectRefusal(refused, 403, 'forbidden');
      expectLogged(proxied, refused, 'ip_not_whitelisted', { clientIp: '203.0.113.7' });
    });

    it('fails closed on a malformed entry before reading the body or the token', async () => {
      const res = await send(proxied.url, {
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '127.1' },
        body: '{not json',
        localAddress: '127.0.0.1',
      });
      expectRefusal(res, 403, 'forbidden');
      expectLogged(proxied, res, 'forwarded_for_malformed');
    });

    it('gives a malformed-address 403 the same body as any other 403', async () => {
      const malformed = expectRefusal(await viaProxy(OIN_WAN, wan(), 'unknown'), 403, 'forbidden');
      const foreign = expectRefusal(await viaProxy(OIN_LAN, lan(), '203.0.113.7'), 403, 'forbidden');
      const mainGate = expectRefusal(await call(gate.url, { oin: OIN_UNKNOWN }, undefined), 403, 'forbidden');
      for (const body of [malformed, foreign, mainGate]) delete body['requestId'];
      expect(malformed).to.deep.equal(foreign);
      expect(malformed).to.deep.equal(mainGate);
    });

    it('does not believe X-Forwarded-For from a peer outside the trusted range', async () => {
      const res = await viaProxy(OIN_WAN, wan(), '203.0.113.7', '127.0.0.3');
      expectRefusal(res, 403, 'forbidden');
      expectLogged(proxied, res, 'ip_not_whitelisted', { clientIp: '127.0.0.3' });
      expectAllowed(proxied, await viaProxy(OIN_LAN, lan(), 'unknown', '127.0.0.3'), OIN_LAN, { clientIp: '127.0.0.3' });
    });
  });

  describe('IPv4-mapped and IPv6 peers on a dual-stack listener', () => {
    let dual: Gate;
    let port: number;
    const v4 = (): string => tokenOf(OIN_V4, SECRET_V4, 'v4');
    const v6 = (): string => tokenOf(OIN_V6, SECRET_V6, 'v6');

    before(async () => {
      dual = await startGate(
        [
          { oin: OIN_V4, cidrs: ['127.0.0.1/32'], keys: [{ kid: 'v4', alg: 'HS256', secret: SECRET_V4 }] },
          { oin: OIN_V6, cidrs: ['::1/128'], keys: [{ kid: 'v6', alg: 'HS256', secret: SECRET_V6 }] },
        ],
        { OINGATE_LISTEN: '[::]:0' },
      );
      port = Number(new URL(dual.url).port);
    });
    after(() => dual?.close());

    it('matches an IPv4 client (seen as ::ffff:127.0.0.1) against 127.0.0.1/32', async () => {
      const res = await send(`http://127.0.0.1:${port}`, authRequest(OIN_V4, v4()));
      expectAllowed(dual, res, OIN_V4, { clientIp: '127.0.0.1' });
    });

    it('matches an IPv6 client against ::1/128', async () => {
      const res = await send(`http://[::1]:${port}`, authRequest(OIN_V6, v6()));
      expectAllowed(dual, res, OIN_V6, { clientIp: '::1' });
    });

    it('keeps the families apart', async () => {
      const v4OverV6 = await send(`http://[::1]:${port}`, authRequest(OIN_V4, v4()));
      expectRefusal(v4OverV6, 403, 'forbidden');
      expectLogged(dual, v4OverV6, 'ip_not_whitelisted', { clientIp: '::1' });
      const v6OverV4 = await send(`http://127.0.0.1:${port}`, authRequest(OIN_V6, v6()));
      expectRefusal(v6OverV4, 403, 'forbidden');
      expectLogged(dual, v6OverV4, 'ip_not_whitelisted', { clientIp: '127.0.0.1' });
    });
  });

  describe('x-request-id on every response', () => {
    const SANE = 'req-42_abc.DEF~:/=+';

    it('echoes a sane incoming id on 200', async () => {
      const res = await send(gate.url, authRequest(OIN_A, tokenFor(OIN_A), { 'x-request-id': SANE }));
      expectAllowed(gate, res, OIN_A);
      expect(res.headers['x-request-id']).to.equal(SANE);
      expect(gate.logs.last()?.['requestId']).to.equal(SANE);
    });

    it('echoes a sane incoming id on refusals, in the header and the body', async () => {
      const requests: Array<[number, RequestOptions]> = [
        [400, authRequest('1234', tokenFor(OIN_A), { 'x-request-id': SANE })],
        [401, authRequest(OIN_A, undefined, { 'x-request-id': SANE })],
        [403, authRequest(OIN_UNKNOWN, undefined, { 'x-request-id': SANE })],
        [415, { headers: { 'content-type': 'text/plain', 'x-request-id': SANE }, body: 'hi' }],
      ];
      for (const [status, options] of requests) {
        const res = await send(gate.url, options);
        expect(res.status).to.equal(status);
        expect(res.headers['x-request-id']).to.equal(SANE);
        expect(res.json()['requestId']).to.equal(SANE);
      }
    });

    it('echoes an id of exactly 128 visible characters', async () => {
      const id = 'a'.repeat(128);
      const res = await send(gate.url, authRequest(OIN_A, tokenFor(OIN_A), { 'x-request-id': id }));
      expect(res.headers['x-request-id']).to.equal(id);
    });

    for (const [title, id] of [
      ['one with a space', 'abc def'],
      ['one of 129 characters', 'a'.repeat(129)],
      ['one with a non-ASCII character', 'abc\u00e9'],
    ] as const) {
      it(`replaces ${title} with a fresh id`, async () => {
        const ok = await send(gate.url, authRequest(OIN_A, tokenFor(OIN_A), { 'x-request-id': Buffer.from(id, 'utf8').toString('latin1') }));
        expect(ok.status).to.equal(200);
        const refused = await send(gate.url, authRequest(OIN_UNKNOWN, undefined, { 'x-request-id': Buffer.from(id, 'utf8').toString('latin1') }));
        expect(refused.status).to.equal(403);
        for (const res of [ok, refused]) {
          const fresh = res.headers['x-request-id'];
          expect(fresh).to.be.a('string').and.match(/^[\x21-\x7e]{1,128}$/);
          expect(fresh).to.not.equal(id);
        }
        expect(refused.json()['requestId']).to.equal(refused.headers['x-request-id']);
        expect(ok.headers['x-request-id']).to.not.equal(refused.headers['x-request-id']);
      });
    }

    it('replaces two x-request-id lines with a fresh id', async () => {
      const res = await send(gate.url, authRequest(OIN_A, tokenFor(OIN_A), { 'x-request-id': ['one', 'two'] }));
      expect(res.headers['x-request-id']).to.be.a('string').and.not.match(/one|two/);
    });

    it('gives every response without an incoming id a fresh, distinct one', async () => {
      const responses = await Promise.all([
        send(gate.url, authRequest(OIN_A, tokenFor(OIN_A))),
        send(gate.url, authRequest(OIN_A, undefined)),
        send(gate.url, authRequest(OIN_UNKNOWN, undefined)),
        call(gate.url, '{', undefined),
      ]);
      expect(responses.map((r) => r.status)).to.deep.equal([200, 401, 403, 400]);
      const ids = responses.map((r) => r.headers['x-request-id']);
      for (const id of ids) expect(id).to.be.a('string').and.match(/^[\x21-\x7e]{1,128}$/);
      expect(new Set(ids).size).to.equal(ids.length);
    });
  });

  describe('request smuggling: Content-Length together with Transfer-Encoding', () => {
    it('answers 400 with a JSON body and never 200', async () => {
      const raw = await rawExchange(gate.url, 'POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      expect(raw).to.match(/^HTTP\/1\.1 400 /);
      expect(raw).to.not.match(/HTTP\/1\.1 200/);
      const [head = '', body = ''] = raw.split('\r\n\r\n');
      expect(head.toLowerCase()).to.include('content-type: application/json');
      expect(head.toLowerCase()).to.match(/\r\nx-request-id: \S+/);
      expect(JSON.parse(body)).to.include({ error: 'bad_request' });
    });

    it('does not answer a smuggled allowed request behind it', async () => {
      const smuggled =
        `GET /api HTTP/1.1\r\nHost: x\r\nx-oin: ${OIN_A}\r\nAuthorization: Bearer ${tokenFor(OIN_A)}\r\n\r\n`;
      const raw = await rawExchange(
        gate.url,
        `POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      );
      expect(raw).to.match(/^HTTP\/1\.1 400 /);
      expect(raw).to.not.match(/HTTP\/1\.1 200/);
      expect(raw.toLowerCase()).to.not.include('x-authenticated-oin');
    });

    it('still answers the same smuggled request 200 when sent on its own (control)', async () => {
      const raw = await rawExchange(
        gate.url,
        `GET /api HTTP/1.1\r\nHost: x\r\nx-oin: ${OIN_A}\r\nAuthorization: Bearer ${tokenFor(OIN_A)}\r\nConnection: close\r\n\r\n`,
      );
      expect(raw).to.match(/^HTTP\/1\.1 200 /);
      expect(raw.toLowerCase()).to.include(`x-authenticated-oin: ${OIN_A}`);
    });
  });
});

describe('before the body: a client outside every tenant\'s ranges', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate([{ oin: OIN_A, cidrs: ['127.0.0.1/32'], keys: [{ kid: 'a1', alg: 'HS256', secret: SECRET_A }] }]);
  });
  after(() => gate?.close());

  /** Sends only the head of a request from `from`; resolves with everything the server sent until it closed (or `waitMs`). */
  function headThenSilence(from: string, head: string, waitMs = 4_000): Promise<{ text: string; ms: number }> {
    const { port } = new URL(gate.url);
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: Number(port), localAddress: from });
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.on('error', reject);
      socket.on('close', () => resolve({ text, ms: Date.now() - started }));
      socket.write(head);
      setTimeout(() => socket.destroy(), waitMs).unref();
    });
  }

  it('gets 403 at once, its announced body never waited for, and the connection closed', async () => {
    const head = `POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\nx-oin: ${OIN_A}\r\n\r\n`;
    const { text, ms } = await headThenSilence('127.0.0.3', head);
    expect(text).to.match(/^HTTP\/1\.1 403 /);
    expect(text.toLowerCase()).to.include('connection: close');
    expect(ms, 'answered and closed without waiting for the body').to.be.below(3_000);
    const line = gate.logs.last();
    expect(line).to.include({ reason: 'ip_no_tenant', clientIp: '127.0.0.3', peer: '127.0.0.3', oinHeader: OIN_A, status: 403 });
  });

  it('gives it the same 403 body as any other 403', async () => {
    const outside = expectRefusal(await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { localAddress: '127.0.0.3' }), 403, 'forbidden');
    const unknown = expectRefusal(await call(gate.url, { oin: OIN_B }, tokenFor(OIN_A)), 403, 'forbidden');
    delete outside['requestId'];
    delete unknown['requestId'];
    expect(outside).to.deep.equal(unknown);
  });

  it('still waits for the body of a client inside a tenant\'s ranges (control)', async () => {
    const head = `POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\nx-oin: ${OIN_A}\r\n\r\n`;
    const { text } = await headThenSilence('127.0.0.1', head, 1_000);
    expect(text, 'nothing answered while the body is still to come').to.equal('');
  });
});

describe('hostile header and key spellings', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate();
  });
  after(() => gate?.close());

  it('refuses header x-oin A with a body naming B under "Oin"', async () => {
    const res = await call(gate.url, { Oin: OIN_B }, tokenFor(OIN_A), { headers: { 'x-oin': OIN_A } });
    expectRefusal(res, 400, 'bad_request');
    expectLogged(gate, res, 'oin_key_folded');
  });

  for (const key of ['OIN', 'Oin', 'o\u0131n']) {
    it(`refuses a body holding "oin" and ${JSON.stringify(key)}`, async () => {
      const res = await call(gate.url, `{"oin":"${OIN_A}",${JSON.stringify(key)}:"${OIN_B}"}`, tokenFor(OIN_A));
      expectRefusal(res, 400, 'bad_request');
      expectLogged(gate, res, 'oin_key_folded');
    });
  }

  it('refuses a repeated Authorization header, even when both lines are the same valid token', async () => {
    const token = tokenFor(OIN_A);
    const res = await call(gate.url, { oin: OIN_A }, undefined, { headers: { authorization: [`Bearer ${token}`, `Bearer ${token}`] } });
    expectRefusal(res, 400, 'bad_request');
    expectLogged(gate, res, 'authorization_repeated');
  });

  it('refuses a repeated Content-Type header', async () => {
    const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { headers: { 'content-type': ['application/json', 'application/json'] } });
    expectRefusal(res, 400, 'bad_request');
    expectLogged(gate, res, 'content_type_repeated');
  });

  it('logs the TCP peer and the kid of the verified key, and the kid a refused token named', async () => {
    const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { localAddress: '127.0.0.2' });
    expectAllowed(gate, res, OIN_A, { peer: '127.0.0.2', kid: 'a1' });
    const refused = await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A }, SECRET_A, { algorithm: 'HS256', keyid: 'not-a1' }));
    expectRefusal(refused, 401, 'unauthorized');
    expectLogged(gate, refused, 'token_unknown_kid', { kid: 'not-a1', peer: '127.0.0.1' });
  });
});

describe('custom OIN field, OIN header and tenant claim (OINGATE_OIN_FIELD, OINGATE_OIN_HEADER, OINGATE_TENANT_CLAIM)', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate(twoTenants(), {
      OINGATE_OIN_FIELD: 'meta.sender.oin',
      OINGATE_OIN_HEADER: 'X-Organisation',
      OINGATE_TENANT_CLAIM: 'org',
    });
  });
  after(() => gate.close());

  const orgToken = (oin: string) => signToken({ org: oin });

  it('reads the OIN at the dotted body path and verifies the configured claim', async () => {
    const res = await call(gate.url, { meta: { sender: { oin: OIN_A } } }, orgToken(OIN_A));
    expect(res.status).to.equal(200);
    expect(res.headers['x-authenticated-oin']).to.equal(OIN_A);
  });

  it('ignores a top-level "oin" once the field is configured elsewhere', async () => {
    const res = await call(gate.url, { oin: OIN_A }, orgToken(OIN_A));
    expect(res.status).to.equal(400);
    expect(gate.logs.last()?.['reason']).to.equal('oin_missing');
  });

  it('reads the configured header, case-insensitively, and ignores x-oin', async () => {
    const ok = await send(gate.url, { method: 'GET', headers: { 'x-organisation': OIN_A, authorization: `Bearer ${orgToken(OIN_A)}` } });
    expect(ok.status).to.equal(200);
    const old = await send(gate.url, { method: 'GET', headers: { 'x-oin': OIN_A, authorization: `Bearer ${orgToken(OIN_A)}` } });
    expect(old.status).to.equal(400);
  });

  it('refuses a header that disagrees with the configured body path', async () => {
    const res = await call(gate.url, { meta: { sender: { oin: OIN_A } } }, orgToken(OIN_A), { headers: { 'x-organisation': OIN_B } });
    expect(res.status).to.equal(400);
    expect(gate.logs.last()?.['reason']).to.equal('oin_conflict');
  });

  it('refuses a token whose configured claim is missing, even when it carries "oin"', async () => {
    const res = await call(gate.url, { meta: { sender: { oin: OIN_A } } }, signToken({ oin: OIN_A }));
    expect(res.status).to.equal(403);
    expect(gate.logs.last()?.['reason']).to.equal('claim_mismatch');
  });
});
