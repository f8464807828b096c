import { constants, createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto';
import { expect } from 'chai';
import { VerifiedTokenCache } from '../../src/token/cache.ts';
import { keySet, type TenantKey } from '../../src/token/key.ts';
import { buildHmacKey, buildPublicKey } from '../../src/token/keys.ts';
import {
  MAX_KIDLESS_CANDIDATES,
  verifyTenantToken,
  type TokenFailure,
  type TokenPolicy,
  type TokenResult,
} from '../../src/token/verify.ts';

const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const NOW = NOW_MS / 1000;
const POLICY: TokenPolicy = { clockToleranceSeconds: 30, maxLifetimeSeconds: 3600 };
const OIN_A = '00000001000000000001';
const OIN_B = '00000001000000000002';

const b64url = (data: string): string => Buffer.from(data, 'utf8').toString('base64url');

function hsKey(kid: string, secret: string, extra: Partial<TenantKey> = {}): TenantKey {
  return { kid, alg: 'HS256', key: buildHmacKey(kid, 'HS256', secret), enabled: true, ...extra };
}

/** An HS256 token from raw header and payload JSON text (so names can repeat in any spelling). */
function craft(header: string, payload: string, secret: string): string {
  const signingInput = `${b64url(header)}.${b64url(payload)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

function expectFailure(result: TokenResult, reason: TokenFailure): void {
  expect(result, JSON.stringify(result)).to.deep.equal({ ok: false, reason });
}

function expectOk(result: TokenResult, kid: string): void {
  expect(result.ok, JSON.stringify(result)).to.equal(true);
  if (result.ok) expect(result.kid).to.equal(kid);
}

const SECRET = 'tenant-a-secret-0123456789abcdef0123';
const keys = keySet([hsKey('hs', SECRET)]);
const HEADER = '{"alg":"HS256","kid":"hs"}';
const times = `"iat":${NOW - 10},"exp":${NOW + 300}`;

describe('verifyTenantToken: names equal under case folding', () => {
  it('accepts a token whose names are all distinct after folding', () => {
    expectOk(verifyTenantToken(craft(HEADER, `{"oin":"${OIN_A}","oinx":"${OIN_B}",${times}}`, SECRET), keys, POLICY, NOW_MS), 'hs');
  });

  it('refuses a payload naming the tenant claim twice in different case ("oin" and "OIN"), though validly signed', () => {
    const token = craft(HEADER, `{"oin":"${OIN_A}","OIN":"${OIN_B}",${times}}`, SECRET);
    expectFailure(verifyTenantToken(token, keys, POLICY, NOW_MS), 'token_claim_collision');
    const mixed = craft(HEADER, `{"Oin":"${OIN_B}",${times},"oin":"${OIN_A}"}`, SECRET);
    expectFailure(verifyTenantToken(mixed, keys, POLICY, NOW_MS), 'token_claim_collision');
  });

  it('refuses spellings that Go or .NET fold together: dotless ı, long ſ, the Kelvin sign', () => {
    for (const payload of [
      `{"oin":"${OIN_A}","o\u0131n":"${OIN_B}",${times}}`, // dotless i: .NET upper-cases it to I
      `{"oin":"${OIN_A}","O\u0131N":"${OIN_B}",${times}}`,
      `{"sub":"a","\u017fub":"b",${times}}`, // long s: Go folds it to s
      `{"kind":"a","\u212Aind":"b",${times}}`, // Kelvin sign: Go folds it to k
      `{"oin":"${OIN_A}","o\\u0131n":"${OIN_B}",${times}}`, // the same, as a JSON escape
    ]) {
      expectFailure(verifyTenantToken(craft(HEADER, payload, SECRET), keys, POLICY, NOW_MS), 'token_claim_collision');
    }
  });

  it('refuses colliding names nested in objects and arrays of the payload', () => {
    for (const nested of [
      `"ctx":{"oin":"${OIN_A}","OIN":"${OIN_B}"}`,
      `"list":[1,{"a":{"Role":"x","role":"y"}}]`,
      `"deep":{"x":[[{"\u212A":1,"k":2}]]}`,
    ]) {
      const token = craft(HEADER, `{"oin":"${OIN_A}",${nested},${times}}`, SECRET);
      expectFailure(verifyTenantToken(token, keys, POLICY, NOW_MS), 'token_claim_collision');
    }
  });

  it('refuses a header holding two names equal under folding', () => {
    for (const header of [
      '{"alg":"HS256","kid":"hs","KID":"other"}',
      '{"alg":"HS256","kid":"hs","\u212Aid":"other"}',
      '{"alg":"HS256","ALG":"none","kid":"hs"}',
      '{"alg":"HS256","kid":"hs","x":{"typ":"a","TYP":"b"}}',
    ]) {
      expectFailure(verifyTenantToken(craft(header, `{"oin":"${OIN_A}",${times}}`, SECRET), keys, POLICY, NOW_MS), 'token_claim_collision');
    }
  });

  it('never caches a refused colliding token', () => {
    const cache = new VerifiedTokenCache();
    const token = craft(HEADER, `{"oin":"${OIN_A}","OIN":"${OIN_B}",${times}}`, SECRET);
    expectFailure(verifyTenantToken(token, keys, POLICY, NOW_MS, cache), 'token_claim_collision');
    expectFailure(verifyTenantToken(token, keys, POLICY, NOW_MS, cache), 'token_claim_collision');
    expect(cache.size).to.equal(0);
  });
});

describe('verifyTenantToken: tokens without kid', () => {
  const secrets = Array.from({ length: MAX_KIDLESS_CANDIDATES + 2 }, (_, i) => `secret-${i}-${randomBytes(16).toString('hex')}`);
  const kidless = (secret: string) => craft('{"alg":"HS256"}', `{"oin":"${OIN_A}",${times}}`, secret);

  it(`tries at most ${MAX_KIDLESS_CANDIDATES} keys of the token's algorithm`, () => {
    expect(MAX_KIDLESS_CANDIDATES).to.equal(8);
    const many = keySet(secrets.map((secret, i) => hsKey(`k${i}`, secret)));
    expectOk(verifyTenantToken(kidless(secrets[7]!), many, POLICY, NOW_MS), 'k7');
    expectFailure(verifyTenantToken(kidless(secrets[8]!), many, POLICY, NOW_MS), 'token_bad_signature');
    expectFailure(verifyTenantToken(kidless(secrets[9]!), many, POLICY, NOW_MS), 'token_bad_signature');
    // Named by kid, the ninth key verifies as any other.
    const named = craft('{"alg":"HS256","kid":"k8"}', `{"oin":"${OIN_A}",${times}}`, secrets[8]!);
    expectOk(verifyTenantToken(named, many, POLICY, NOW_MS), 'k8');
  });

  it('counts only usable keys of the token algorithm toward the limit', () => {
    const disabledFirst = keySet([
      hsKey('off', secrets[0]!, { enabled: false }),
      hsKey('expired', secrets[1]!, { expiresAt: NOW_MS - 1 }),
      ...secrets.slice(2, 10).map((secret, i) => hsKey(`k${i + 2}`, secret)),
    ]);
    expectOk(verifyTenantToken(kidless(secrets[9]!), disabledFirst, POLICY, NOW_MS), 'k9');
    const otherAlg = keySet([
      ...secrets.slice(0, 4).map((secret, i) => ({ ...hsKey(`h${i}`, secret), alg: 'HS512' as const })),
      ...secrets.slice(4, 10).map((secret, i) => hsKey(`k${i + 4}`, secret)),
    ]);
    expectOk(verifyTenantToken(kidless(secrets[9]!), otherAlg, POLICY, NOW_MS), 'k9');
  });
});

describe('verifyTenantToken: per-call issuer and audience', () => {
  const token = (extra: string) => craft(HEADER, `{"oin":"${OIN_A}",${times}${extra}}`, SECRET);
  const withIss = token(',"iss":"https://idp-a.example","aud":"api-a"');

  it("checks the given issuer and audience instead of the policy's", () => {
    const policy = { ...POLICY, issuer: 'https://global.example', audience: 'global' };
    expectFailure(verifyTenantToken(withIss, keys, policy, NOW_MS), 'token_issuer');
    expectOk(verifyTenantToken(withIss, keys, policy, NOW_MS, undefined, { issuer: 'https://idp-a.example', audience: 'api-a' }), 'hs');
    expectFailure(verifyTenantToken(withIss, keys, POLICY, NOW_MS, undefined, { issuer: 'https://idp-b.example' }), 'token_issuer');
    expectFailure(verifyTenantToken(withIss, keys, POLICY, NOW_MS, undefined, { audience: 'api-b' }), 'token_audience');
  });

  it("keeps the policy's value for a field the call does not give", () => {
    const policy = { ...POLICY, issuer: 'https://idp-a.example', audience: 'global' };
    expectFailure(verifyTenantToken(withIss, keys, policy, NOW_MS, undefined, { issuer: 'https://idp-a.example' }), 'token_audience');
    expectOk(verifyTenantToken(withIss, keys, policy, NOW_MS, undefined, { audience: 'api-a' }), 'hs');
    expectOk(verifyTenantToken(withIss, keys, { ...policy, audience: 'api-a' }, NOW_MS, undefined, {}), 'hs');
  });

  it('honours them on a verified-token cache hit too', () => {
    const cache = new VerifiedTokenCache();
    expectOk(verifyTenantToken(withIss, keys, POLICY, NOW_MS, cache, { issuer: 'https://idp-a.example' }), 'hs');
    expect(cache.size).to.equal(1);
    expectFailure(verifyTenantToken(withIss, keys, POLICY, NOW_MS, cache, { issuer: 'https://idp-b.example' }), 'token_issuer');
    expectFailure(verifyTenantToken(withIss, keys, POLICY, NOW_MS, cache, { audience: 'api-b' }), 'token_audience');
    expectOk(verifyTenantToken(withIss, keys, POLICY, NOW_MS, cache, { audience: 'api-a' }), 'hs');
  });
});

describe('verifyTenantToken: inputs that trip jsonwebtoken', () => {
  const typJwt = '{"alg":"HS256","kid":"hs","typ":"JWT"}';

  it('refuses as malformed a validly signed typ JWT token whose payload is not a JSON object, without throwing', () => {
    for (const payload of ['not json', 'null', '42', '[1]', '"x"', '{"exp":1']) {
      expectFailure(verifyTenantToken(craft(typJwt, payload, SECRET), keys, POLICY, NOW_MS), 'token_malformed');
    }
  });

  it('refuses an ECDSA signature of the wrong length as a bad signature, without throwing', () => {
    const ec = keySet([{ kid: 'ec', alg: 'ES256', key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, enabled: true }]);
    const h = b64url('{"alg":"ES256","kid":"ec"}');
    const p = b64url(`{"oin":"${OIN_A}",${times}}`);
    for (const length of [1, 63, 65, 72, 132]) {
      expectFailure(verifyTenantToken(`${h}.${p}.${randomBytes(length).toString('base64url')}`, ec, POLICY, NOW_MS), 'token_bad_signature');
    }
  });

  it('verifies a header holding non-ASCII text, which jsonwebtoken reads as Latin-1', () => {
    const token = craft('{"alg":"HS256","kid":"hs","x-note":"één ſ \u212A"}', `{"oin":"${OIN_A}","naam":"Zoë",${times}}`, SECRET);
    expectOk(verifyTenantToken(token, keys, POLICY, NOW_MS), 'hs');
  });

  it('decides by the clock it is given, never by the wall clock', () => {
    const future = Date.UTC(2040, 0, 1) / 1000;
    const later = craft(HEADER, `{"oin":"${OIN_A}","iat":${future},"nbf":${future},"exp":${future + 60}}`, SECRET);
    expectFailure(verifyTenantToken(later, keys, POLICY, Date.now()), 'token_not_yet_valid');
    expectOk(verifyTenantToken(later, keys, POLICY, future * 1000), 'hs');
    // Long expired by the wall clock, valid at NOW_MS.
    expectOk(verifyTenantToken(craft(HEADER, `{${times}}`, SECRET), keys, POLICY, NOW_MS), 'hs');
    expectFailure(verifyTenantToken(craft(HEADER, `{${times}}`, SECRET), keys, POLICY, NOW_MS + 331_000), 'token_expired');
  });

  it('refuses a token without exp, which jsonwebtoken alone would accept', () => {
    expectFailure(verifyTenantToken(craft(HEADER, `{"oin":"${OIN_A}","iat":${NOW}}`, SECRET), keys, POLICY, NOW_MS), 'token_no_exp');
  });
});

describe('verifyTenantToken: RSA-PSS keys', () => {
  it('verifies PS256 with an RSA-PSS key that carries no restrictions, as keys.ts accepts it', () => {
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    const pem = pss.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const pssKeys = keySet([{ kid: 'pss', alg: 'PS256', key: buildPublicKey('pss', 'PS256', pem), enabled: true }]);
    const signingInput = `${b64url('{"alg":"PS256","kid":"pss"}')}.${b64url(`{"oin":"${OIN_A}",${times}}`)}`;
    const signature = cryptoSign('sha256', Buffer.from(signingInput), {
      key: pss.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
    });
    expectOk(verifyTenantToken(`${signingInput}.${signature.toString('base64url')}`, pssKeys, POLICY, NOW_MS), 'pss');
  });
});
