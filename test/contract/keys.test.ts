/**
 * Contract §1 step 5 and §5, over real sockets: a request is verified with
 * the requesting tenant's own usable keys only, inside each key's window.
 */
import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { call, OIN_A, OIN_B, SECRET_A, SECRET_B, signToken, startGate, type Gate, type Response } from '../support/gate.ts';

const SECRET_OLD = 'tenant-a-retired-0123456789abcdefghijk';
const SECRET_SOON = 'tenant-a-upcoming-0123456789abcdefghij';
const SECRET_OFF = 'tenant-a-disabled-0123456789abcdefghij';

function b64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}

function handSigned(header: Record<string, unknown>, payload: Record<string, unknown>, secret: string): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function expectUnauthorized(gate: Gate, res: Response, reason: RegExp): void {
  expect(res.status, res.text).to.equal(401);
  expect(res.json()['error']).to.equal('unauthorized');
  expect(res.headers['www-authenticate']).to.equal('Bearer');
  expect(res.headers['x-authenticated-oin']).to.equal(undefined);
  const line = gate.logs.last();
  expect(line?.['requestId']).to.equal(res.headers['x-request-id']);
  expect(String(line?.['reason'])).to.match(reason);
  expect(res.text).to.not.include(String(line?.['reason']));
}

describe('contract: a tenant\'s keys and their windows', () => {
  let gate: Gate;
  const day = 86_400_000;

  before(async () => {
    gate = await startGate([
      {
        oin: OIN_A,
        cidrs: ['127.0.0.0/8', '::1/128'],
        keys: [
          { kid: 'a1', alg: 'HS256', secret: SECRET_A },
          { kid: 'old', alg: 'HS256', secret: SECRET_OLD, expiresAt: new Date(Date.now() - day).toISOString() },
          { kid: 'soon', alg: 'HS256', secret: SECRET_SOON, notBefore: new Date(Date.now() + day).toISOString() },
          { kid: 'off', alg: 'HS256', secret: SECRET_OFF, enabled: false },
        ],
      },
      { oin: OIN_B, cidrs: ['127.0.0.0/8', '::1/128'], keys: [{ kid: 'b1', alg: 'HS256', secret: SECRET_B }] },
    ]);
  });
  after(() => gate?.close());

  it('allows a token signed with the tenant\'s usable key (control)', async () => {
    const res = await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A }));
    expect(res.status, res.text).to.equal(200);
    expect(res.headers['x-authenticated-oin']).to.equal(OIN_A);
  });

  for (const [kid, secret, what] of [
    ['old', SECRET_OLD, 'whose expiresAt has passed'],
    ['soon', SECRET_SOON, 'whose notBefore lies ahead'],
    ['off', SECRET_OFF, 'that is disabled'],
  ] as const) {
    it(`refuses a token signed with a key ${what}, named by kid or not`, async () => {
      const named = signToken({ oin: OIN_A }, secret, { algorithm: 'HS256', keyid: kid });
      expectUnauthorized(gate, await call(gate.url, { oin: OIN_A }, named), /^token_/);
      const unnamed = signToken({ oin: OIN_A }, secret, { algorithm: 'HS256' });
      expectUnauthorized(gate, await call(gate.url, { oin: OIN_A }, unnamed), /^token_/);
    });
  }

  it('refuses a token for tenant A signed with tenant B\'s key and kid, whatever its claim says', async () => {
    const forged = signToken({ oin: OIN_A }, SECRET_B, { algorithm: 'HS256', keyid: 'b1' });
    expectUnauthorized(gate, await call(gate.url, { oin: OIN_A }, forged), /^token_/);
    const unnamed = signToken({ oin: OIN_A }, SECRET_B, { algorithm: 'HS256' });
    expectUnauthorized(gate, await call(gate.url, { oin: OIN_A }, unnamed), /^token_/);
  });

  it('refuses with 401 a token whose header holds kid twice under case folding', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = handSigned({ alg: 'HS256', kid: 'a1', KID: 'b1', typ: 'JWT' }, { oin: OIN_A, iat: now, exp: now + 600 }, SECRET_A);
    expectUnauthorized(gate, await call(gate.url, { oin: OIN_A }, token), /^token_/);
  });

  it('refuses with 401 a token whose payload holds the tenant claim twice under case folding', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = handSigned({ alg: 'HS256', kid: 'a1', typ: 'JWT' }, { oin: OIN_A, OIN: OIN_B, iat: now, exp: now + 600 }, SECRET_A);
    expectUnauthorized(gate, await call(gate.url, { oin: OIN_A }, token), /^token_/);
  });
});
