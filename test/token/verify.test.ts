import {
  createHmac,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
  type KeyObject,
  type RSAPSSKeyPairKeyObjectOptions,
} from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import type { Algorithm } from '../../src/model/algorithms.ts';
import { keySet, type KeySet, type TenantKey } from '../../src/token/key.ts';
import { buildHmacKey, buildPublicKey } from '../../src/token/keys.ts';
import {
  extractBearer,
  MAX_TOKEN_LENGTH,
  TOKEN_FAILURES,
  verifyTenantToken,
  type TokenFailure,
  type TokenPolicy,
  type TokenResult,
} from '../../src/token/verify.ts';

// ---------------------------------------------------------------- fixtures

const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const NOW = NOW_MS / 1000;
const POLICY: TokenPolicy = { clockToleranceSeconds: 30, maxLifetimeSeconds: 3600 };

const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

function tenantKey(kid: string, alg: Algorithm, key: KeyObject, extra: Partial<TenantKey> = {}): TenantKey {
  return { kid, alg, key, enabled: true, ...extra };
}

/** Signs with jsonwebtoken, the implementation independent of ours. */
function jwtSign(
  payload: Record<string, unknown>,
  key: KeyObject | string | Buffer,
  alg: Algorithm,
  kid?: string,
): string {
  const options: jwt.SignOptions = { algorithm: alg };
  if (kid !== undefined) options.keyid = kid;
  return jwt.sign(payload, key, options);
}

/** Hand-crafts an HMAC-signed token from raw header and payload text. */
function craftHmac(header: string | object, payload: string | object, secret: Buffer | KeyObject, hash = 'sha256'): string {
  const h = b64url(typeof header === 'string' ? header : JSON.stringify(header));
  const p = b64url(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const sig = createHmac(hash, secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

/** Claims valid at NOW under POLICY. */
function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: 'user-1', iat: NOW - 60, exp: NOW + 600, ...extra };
}

function expectFailure(result: TokenResult, reason: TokenFailure): void {
  expect(result, JSON.stringify(result)).to.deep.equal({ ok: false, reason });
}

function expectOk(result: TokenResult, kid: string): Readonly<Record<string, unknown>> {
  if (!result.ok) throw new Error(`expected success, got ${result.reason}`);
  expect(result.kid).to.equal(kid);
  return result.claims;
}

// Tenant A's keys.
const hsSecret = randomBytes(32).toString('base64url');
const hsKey = buildHmacKey('hs', 'HS256', hsSecret);
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const rsaKey = buildPublicKey('rsa', 'RS256', rsaPublicPem);
const tenantA = keySet([tenantKey('hs', 'HS256', hsKey), tenantKey('rsa', 'RS256', rsaKey)]);

// Tenant B: another organisation with keys of its own.
const otherSecret = randomBytes(32).toString('base64url');
const tenantB = keySet([tenantKey('b1', 'HS256', buildHmacKey('b1', 'HS256', otherSecret))]);

// ------------------------------------------------------------------- tests

describe('verifyTenantToken', () => {
  describe('algorithm families', () => {
    const ecCurves: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };
    const cases: Array<{ alg: Algorithm; signKey: KeyObject | string; verifyKey: KeyObject }> = [];
    for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
      const secret = randomBytes(48).toString('base64');
      cases.push({ alg, signKey: secret, verifyKey: buildHmacKey(alg, alg, secret) });
    }
    for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const) {
      cases.push({ alg, signKey: rsa.privateKey, verifyKey: rsaKey });
    }
    for (const alg of ['ES256', 'ES384', 'ES512'] as const) {
      const pair = generateKeyPairSync('ec', { namedCurve: ecCurves[alg]! });
      const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
      cases.push({ alg, signKey: pair.privateKey, verifyKey: buildPublicKey(alg, alg, pem) });
    }

    for (const { alg, signKey, verifyKey } of cases) {
      it(`accepts a ${alg} token signed by jsonwebtoken, with and without kid`, () => {
        const keys = keySet([tenantKey(alg, alg, verifyKey)]);
        const withKid = jwtSign(claims({ n: 1 }), signKey, alg, alg);
        expect(expectOk(verifyTenantToken(withKid, keys, POLICY, NOW_MS), alg)).to.include({ sub: 'user-1', n: 1 });
        const withoutKid = jwtSign(claims({ n: 2 }), signKey, alg);
        expect(expectOk(verifyTenantToken(withoutKid, keys, POLICY, NOW_MS), alg)).to.include({ n: 2 });
      });

      it(`refuses a ${alg} token whose signature is flipped by one bit`, () => {
        const keys = keySet([tenantKey(alg, alg, verifyKey)]);
        const token = jwtSign(claims(), signKey, alg, alg);
        const dot = token.lastIndexOf('.');
        const sig = Buffer.from(token.slice(dot + 1), 'base64url');
        sig[5]! ^= 0x01;
        const tampered = `${token.slice(0, dot)}.${sig.toString('base64url')}`;
        expectFailure(verifyTenantToken(tampered, keys, POLICY, NOW_MS), 'token_bad_signature');
      });
    }

    it('accepts a PS256 token verified with an RSA-PSS (not plain RSA) key', () => {
      // @types/node 20 types saltLength as a string; node:crypto wants a number.
      const pss = generateKeyPairSync('rsa-pss', {
        modulusLength: 2048,
        hashAlgorithm: 'sha256',
        mgf1HashAlgorithm: 'sha256',
        saltLength: 32,
      } as unknown as RSAPSSKeyPairKeyObjectOptions);
      const pem = pss.publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const keys = keySet([tenantKey('pss', 'PS256', buildPublicKey('pss', 'PS256', pem))]);
      const token = jwtSign(claims(), pss.privateKey, 'PS256', 'pss');
      expectOk(verifyTenantToken(token, keys, POLICY, NOW_MS), 'pss');
    });

    it('refuses an ES256 signature in DER rather than JOSE (r||s) encoding', () => {
      const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const keys = keySet([tenantKey('ec', 'ES256', pair.publicKey)]);
      const h = b64url(JSON.stringify({ alg: 'ES256', kid: 'ec' }));
      const p = b64url(JSON.stringify(claims()));
      const der = cryptoSign('sha256', Buffer.from(`${h}.${p}`), { key: pair.privateKey, dsaEncoding: 'der' });
      const p1363 = cryptoSign('sha256', Buffer.from(`${h}.${p}`), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' });
      expectOk(verifyTenantToken(`${h}.${p}.${p1363.toString('base64url')}`, keys, POLICY, NOW_MS), 'ec');
      expectFailure(verifyTenantToken(`${h}.${p}.${der.toString('base64url')}`, keys, POLICY, NOW_MS), 'token_bad_signature');
    });

    it('refuses a payload changed after signing', () => {
      const token = jwtSign(claims({ role: 'user' }), hsSecret, 'HS256', 'hs');
      const [h, , s] = token.split('.');
      const forged = `${h}.${b64url(JSON.stringify(claims({ role: 'admin' })))}.${s}`;
      expectFailure(verifyTenantToken(forged, tenantA, POLICY, NOW_MS), 'token_bad_signature');
    });
  });

  describe('algorithm pinning', () => {
    it('refuses an unsigned alg none token', () => {
      const payload = b64url(JSON.stringify(claims()));
      expect(b64url('{"alg":"none"}')).to.equal('eyJhbGciOiJub25lIn0');
      expectFailure(verifyTenantToken(`eyJhbGciOiJub25lIn0.${payload}.`, tenantA, POLICY, NOW_MS), 'token_malformed');
    });

    it('refuses an alg none token carrying a signature, with or without a kid', () => {
      const payload = b64url(JSON.stringify(claims()));
      const sig = createHmac('sha256', hsKey).update(`eyJhbGciOiJub25lIn0.${payload}`).digest('base64url');
      expectFailure(
        verifyTenantToken(`eyJhbGciOiJub25lIn0.${payload}.${sig}`, tenantA, POLICY, NOW_MS),
        'token_unknown_kid',
      );
      const noneWithKid = craftHmac({ alg: 'none', kid: 'hs' }, claims(), hsKey);
      expectFailure(verifyTenantToken(noneWithKid, tenantA, POLICY, NOW_MS), 'token_algorithm');
    });

    it('refuses a token signed with HS256 using the RSA public key as secret', () => {
      // Classic key confusion: the public PEM is public, so anyone can HMAC with it.
      const confusedKid = craftHmac({ alg: 'HS256', kid: 'rsa' }, claims(), Buffer.from(rsaPublicPem));
      expectFailure(verifyTenantToken(confusedKid, tenantA, POLICY, NOW_MS), 'token_algorithm');
      const rsaOnly = keySet([tenantKey('rsa', 'RS256', rsaKey)]);
      const confusedNoKid = craftHmac({ alg: 'HS256' }, claims(), Buffer.from(rsaPublicPem));
      expectFailure(verifyTenantToken(confusedNoKid, rsaOnly, POLICY, NOW_MS), 'token_unknown_kid');
      // Also with the DER bytes of the key.
      const der = rsa.publicKey.export({ type: 'spki', format: 'der' });
      const confusedDer = craftHmac({ alg: 'HS256', kid: 'rsa' }, claims(), der);
      expectFailure(verifyTenantToken(confusedDer, tenantA, POLICY, NOW_MS), 'token_algorithm');
    });

    it('refuses to verify HMAC with a public key even if a key were mis-pinned to HS256', () => {
      // A TenantKey built wrongly (not via keys.ts): HS256 pinned, public key held.
      const misPinned = keySet([tenantKey('bad', 'HS256', rsaKey)]);
      const token = craftHmac({ alg: 'HS256', kid: 'bad' }, claims(), Buffer.from(rsaPublicPem));
      expectFailure(verifyTenantToken(token, misPinned, POLICY, NOW_MS), 'token_bad_signature');
      const noKid = craftHmac({ alg: 'HS256' }, claims(), Buffer.from(rsaPublicPem));
      expectFailure(verifyTenantToken(noKid, misPinned, POLICY, NOW_MS), 'token_bad_signature');
    });

    it('refuses a token whose header alg differs from the key alg, even if signed with the right secret', () => {
      const hs512 = jwtSign(claims(), hsSecret, 'HS512', 'hs');
      expectFailure(verifyTenantToken(hs512, tenantA, POLICY, NOW_MS), 'token_algorithm');
      const hs512NoKid = jwtSign(claims(), hsSecret, 'HS512');
      expectFailure(verifyTenantToken(hs512NoKid, tenantA, POLICY, NOW_MS), 'token_unknown_kid');
    });

    it('ignores a key embedded in the token header (jwk)', () => {
      const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const tenantEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const keys = keySet([tenantKey('ec', 'ES256', tenantEc.publicKey)]);
      const jwk = attacker.publicKey.export({ format: 'jwk' });
      const token = jwt.sign(claims(), attacker.privateKey, { algorithm: 'ES256', keyid: 'ec', header: { alg: 'ES256', jwk } as jwt.JwtHeader });
      expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).to.have.property('jwk');
      expectFailure(verifyTenantToken(token, keys, POLICY, NOW_MS), 'token_bad_signature');
    });
  });

  describe('key selection', () => {
    const first = randomBytes(32);
    const second = randomBytes(32);
    const twoKeys = keySet([
      tenantKey('first', 'HS256', createSecretKey(first)),
      tenantKey('second', 'HS256', createSecretKey(second)),
    ]);

    it('selects the key named by kid', () => {
      const token = jwtSign(claims(), second, 'HS256', 'second');
      expectOk(verifyTenantToken(token, twoKeys, POLICY, NOW_MS), 'second');
    });

    it('refuses a token whose kid names a key other than the one that signed it', () => {
      const token = jwtSign(claims(), second, 'HS256', 'first');
      expectFailure(verifyTenantToken(token, twoKeys, POLICY, NOW_MS), 'token_bad_signature');
    });

    it('treats a path-like kid as an unknown kid, even with a token signed with an empty secret', () => {
      const token = craftHmac({ alg: 'HS256', kid: '../../dev/null' }, claims(), Buffer.alloc(0));
      expectFailure(verifyTenantToken(token, twoKeys, POLICY, NOW_MS), 'token_unknown_kid');
    });

    it('refuses an unknown kid', () => {
      const token = jwtSign(claims(), first, 'HS256', 'third');
      expectFailure(verifyTenantToken(token, twoKeys, POLICY, NOW_MS), 'token_unknown_kid');
    });

    it('does not resolve a kid through Object.prototype', () => {
      for (const kid of ['__proto__', 'constructor', 'toString']) {
        const token = craftHmac({ alg: 'HS256', kid }, claims(), first);
        expectFailure(verifyTenantToken(token, twoKeys, POLICY, NOW_MS), 'token_unknown_kid');
      }
    });

    it('refuses a disabled key, a key before its notBefore and a key from its expiresAt on', () => {
      const key = createSecretKey(first);
      const token = jwtSign(claims(), first, 'HS256', 'k');
      const at = (extra: Partial<TenantKey>) => verifyTenantToken(token, keySet([tenantKey('k', 'HS256', key, extra)]), POLICY, NOW_MS);
      expectFailure(at({ enabled: false }), 'token_key_inactive');
      expectFailure(at({ notBefore: NOW_MS + 1 }), 'token_key_inactive');
      expectFailure(at({ expiresAt: NOW_MS }), 'token_key_inactive');
      expectFailure(at({ expiresAt: NOW_MS - 1000 }), 'token_key_inactive');
      // The same key inside its window verifies.
      expectOk(at({ notBefore: NOW_MS, expiresAt: NOW_MS + 1 }), 'k');
    });

    it('without kid, tries each usable key of the header alg and reports the one that verified', () => {
      const token = jwtSign(claims(), second, 'HS256');
      expectOk(verifyTenantToken(token, twoKeys, POLICY, NOW_MS), 'second');
      const withRsaFirst = keySet([tenantKey('rsa', 'RS256', rsaKey), ...twoKeys.list]);
      expectOk(verifyTenantToken(token, withRsaFirst, POLICY, NOW_MS), 'second');
    });

    it('without kid, skips inactive keys even when they would verify', () => {
      const token = jwtSign(claims(), first, 'HS256');
      const firstDisabled = keySet([
        tenantKey('first', 'HS256', createSecretKey(first), { enabled: false }),
        tenantKey('second', 'HS256', createSecretKey(second)),
      ]);
      expectFailure(verifyTenantToken(token, firstDisabled, POLICY, NOW_MS), 'token_bad_signature');
      const onlyExpired = keySet([tenantKey('first', 'HS256', createSecretKey(first), { expiresAt: NOW_MS })]);
      expectFailure(verifyTenantToken(token, onlyExpired, POLICY, NOW_MS), 'token_unknown_kid');
    });

    it('without kid, refuses a token no key verifies', () => {
      const token = jwtSign(claims(), randomBytes(32), 'HS256');
      expectFailure(verifyTenantToken(token, twoKeys, POLICY, NOW_MS), 'token_bad_signature');
    });

    it('refuses with an empty key set', () => {
      const token = jwtSign(claims(), first, 'HS256');
      expectFailure(verifyTenantToken(token, keySet([]), POLICY, NOW_MS), 'token_unknown_kid');
    });

    it("never verifies a token signed with another tenant's key", () => {
      const withKid = jwtSign(claims(), otherSecret, 'HS256', 'b1');
      expectOk(verifyTenantToken(withKid, tenantB, POLICY, NOW_MS), 'b1');
      expectFailure(verifyTenantToken(withKid, tenantA, POLICY, NOW_MS), 'token_unknown_kid');
      const withoutKid = jwtSign(claims(), otherSecret, 'HS256');
      expectFailure(verifyTenantToken(withoutKid, tenantA, POLICY, NOW_MS), 'token_bad_signature');
      // Same kid name in both tenants: still tenant A's secret only.
      const sameKid = jwtSign(claims(), otherSecret, 'HS256', 'hs');
      expectFailure(verifyTenantToken(sameKid, tenantA, POLICY, NOW_MS), 'token_bad_signature');
      // And the other way round.
      const fromA = jwtSign(claims(), hsSecret, 'HS256', 'hs');
      expectOk(verifyTenantToken(fromA, tenantA, POLICY, NOW_MS), 'hs');
      expectFailure(verifyTenantToken(fromA, tenantB, POLICY, NOW_MS), 'token_unknown_kid');
    });

    it('returns the verified claims', () => {
      const token = jwtSign(claims({ oin: '00000001234567890000', scope: ['a', 'b'] }), hsSecret, 'HS256', 'hs');
      const result = expectOk(verifyTenantToken(token, tenantA, POLICY, NOW_MS), 'hs');
      expect(result).to.deep.equal(claims({ oin: '00000001234567890000', scope: ['a', 'b'] }));
    });
  });

  describe('claims', () => {
    const verifyClaims = (payload: Record<string, unknown> | string, policy: TokenPolicy = POLICY) =>
      verifyTenantToken(craftHmac({ alg: 'HS256', kid: 'hs' }, payload, hsKey), tenantA, policy, NOW_MS);

    it('refuses a token without exp', () => {
      expectFailure(verifyClaims({ sub: 'x', iat: NOW }), 'token_no_exp');
    });

    it('refuses a validly signed payload that names a claim twice, so no reader can pick the other one', () => {
      const payload = `{"oin":"00000001000000000002","exp":${NOW + 600},"oin":"00000001000000000001"}`;
      expectFailure(verifyClaims(payload), 'token_malformed');
      const escaped = `{"oin":"00000001000000000002","exp":${NOW + 600},"o\\u0069n":"00000001000000000001"}`;
      expectFailure(verifyClaims(escaped), 'token_malformed');
    });

    it('refuses a validly signed payload that is not valid UTF-8', () => {
      const bytes = Buffer.concat([Buffer.from(`{"exp":${NOW + 600},"sub":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
      const h = Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'hs' })).toString('base64url');
      const p = bytes.toString('base64url');
      const sig = createHmac('sha256', hsKey).update(`${h}.${p}`).digest('base64url');
      expectFailure(verifyTenantToken(`${h}.${p}.${sig}`, tenantA, POLICY, NOW_MS), 'token_malformed');
    });

    it('refuses an exp that is not a finite number (string, null, 1e400)', () => {
      expectFailure(verifyClaims({ iat: NOW, exp: String(NOW + 60) }), 'token_no_exp');
      expectFailure(verifyClaims({ iat: NOW, exp: '9999999999' }), 'token_no_exp');
      expectFailure(verifyClaims({ iat: NOW, exp: null }), 'token_no_exp');
      // JSON.parse turns 1e400 into Infinity.
      expect(JSON.parse('{"exp":1e400}').exp).to.equal(Infinity);
      expectFailure(verifyClaims('{"exp":1e400}'), 'token_no_exp');
      expectFailure(verifyClaims(`{"iat":${NOW},"exp":1e400}`), 'token_no_exp');
    });

    it('refuses a token expired beyond the clock tolerance and accepts one expired within it', () => {
      expectFailure(verifyClaims({ iat: NOW - 100, exp: NOW - 31 }), 'token_expired');
      // Boundary: now == exp + tolerance is expired.
      expectFailure(verifyClaims({ iat: NOW - 100, exp: NOW - 30 }), 'token_expired');
      expectOk(verifyClaims({ iat: NOW - 100, exp: NOW - 29 }), 'hs');
      expectFailure(verifyClaims({ iat: NOW - 100, exp: NOW }, { ...POLICY, clockToleranceSeconds: 0 }), 'token_expired');
      expectOk(verifyClaims({ iat: NOW - 100, exp: NOW + 0.5 }, { ...POLICY, clockToleranceSeconds: 0 }), 'hs');
    });

    it('refuses a token whose nbf is in the future beyond the tolerance, and accepts one within it', () => {
      expectFailure(verifyClaims(claims({ nbf: NOW + 31 })), 'token_not_yet_valid');
      expectOk(verifyClaims(claims({ nbf: NOW + 30 })), 'hs');
      expectOk(verifyClaims(claims({ nbf: NOW - 1000 })), 'hs');
    });

    it('refuses an nbf that is not a finite number as malformed', () => {
      expectFailure(verifyClaims(claims({ nbf: String(NOW) })), 'token_malformed');
      expectFailure(verifyClaims(claims({ nbf: null })), 'token_malformed');
    });

    it('refuses a token issued in the future beyond the tolerance, and accepts one within it', () => {
      expectFailure(verifyClaims({ iat: NOW + 31, exp: NOW + 600 }), 'token_iat_future');
      expectOk(verifyClaims({ iat: NOW + 30, exp: NOW + 600 }), 'hs');
    });

    it('refuses an iat that is not a finite number as malformed', () => {
      expectFailure(verifyClaims({ iat: String(NOW), exp: NOW + 600 }), 'token_malformed');
      expectFailure(verifyClaims(`{"iat":1e400,"exp":${NOW + 600}}`), 'token_malformed');
    });

    it('refuses a lifetime (exp - iat) over the maximum, even when the remaining time is short', () => {
      expectFailure(verifyClaims({ iat: NOW - 3600, exp: NOW + 1 }), 'token_lifetime');
      expectOk(verifyClaims({ iat: NOW - 3599, exp: NOW + 1 }), 'hs');
      expectOk(verifyClaims({ iat: NOW, exp: NOW + 3600 }), 'hs');
    });

    it('without iat, refuses an exp further than the maximum lifetime from now', () => {
      expectFailure(verifyClaims({ exp: NOW + 3601 }), 'token_lifetime');
      expectFailure(verifyClaims({ exp: NOW + 10 * 365 * 86400 }), 'token_lifetime');
      expectOk(verifyClaims({ exp: NOW + 3600 }), 'hs');
    });

    it('checks the issuer when the policy sets one', () => {
      const policy = { ...POLICY, issuer: 'https://idp.example.nl' };
      expectOk(verifyClaims(claims({ iss: 'https://idp.example.nl' }), policy), 'hs');
      expectFailure(verifyClaims(claims({ iss: 'https://idp.example.com' }), policy), 'token_issuer');
      expectFailure(verifyClaims(claims({ iss: 'https://idp.example.nl/' }), policy), 'token_issuer');
      expectFailure(verifyClaims(claims(), policy), 'token_issuer');
      expectFailure(verifyClaims(claims({ iss: ['https://idp.example.nl'] }), policy), 'token_issuer');
      // Without an issuer in the policy, iss is not checked.
      expectOk(verifyClaims(claims({ iss: 'anything' })), 'hs');
    });

    it('checks the audience as a string or an array of strings when the policy sets one', () => {
      const policy = { ...POLICY, audience: 'oingate' };
      expectOk(verifyClaims(claims({ aud: 'oingate' }), policy), 'hs');
      expectOk(verifyClaims(claims({ aud: ['other', 'oingate'] }), policy), 'hs');
      expectFailure(verifyClaims(claims({ aud: 'other' }), policy), 'token_audience');
      expectFailure(verifyClaims(claims({ aud: ['other', 'third'] }), policy), 'token_audience');
      expectFailure(verifyClaims(claims({ aud: [] }), policy), 'token_audience');
      expectFailure(verifyClaims(claims({ aud: ['oingate', 42] }), policy), 'token_audience');
      expectFailure(verifyClaims(claims({ aud: [['oingate']] }), policy), 'token_audience');
      expectFailure(verifyClaims(claims({ aud: { 0: 'oingate' } }), policy), 'token_audience');
      expectFailure(verifyClaims(claims(), policy), 'token_audience');
      expectOk(verifyClaims(claims({ aud: 'other' })), 'hs');
    });

    it('refuses a validly signed payload that is not a JSON object', () => {
      for (const payload of ['[1,2]', 'null', '42', '"exp"', 'not json', '{"exp":1']) {
        expectFailure(verifyClaims(payload), 'token_malformed');
      }
    });

    it('reads claims from the payload only, never from Object.prototype', () => {
      Object.defineProperty(Object.prototype, 'exp', { value: NOW + 600, configurable: true });
      try {
        expect(({} as { exp?: number }).exp).to.equal(NOW + 600);
        expectFailure(verifyClaims({ sub: 'x' }), 'token_no_exp');
      } finally {
        delete (Object.prototype as { exp?: number }).exp;
      }
      expect(({} as { exp?: number }).exp).to.equal(undefined);
    });
  });

  describe('malformed tokens', () => {
    const good = jwtSign(claims(), hsSecret, 'HS256', 'hs');
    const [h, p, s] = good.split('.') as [string, string, string];

    it('starts from a token that verifies', () => {
      expectOk(verifyTenantToken(good, tenantA, POLICY, NOW_MS), 'hs');
    });

    it('refuses a missing or empty token as token_missing', () => {
      expectFailure(verifyTenantToken(undefined, tenantA, POLICY, NOW_MS), 'token_missing');
      expectFailure(verifyTenantToken('', tenantA, POLICY, NOW_MS), 'token_missing');
    });

    it('refuses tokens without exactly three non-empty segments', () => {
      for (const token of [`${h}.${p}`, `${h}.${p}.${s}.${s}`, `${h}..${s}`, `.${p}.${s}`, `${h}.${p}.`, h, '..', `${good}.`]) {
        expectFailure(verifyTenantToken(token, tenantA, POLICY, NOW_MS), 'token_malformed');
      }
    });

    it('refuses characters outside base64url, and padding', () => {
      for (const token of [
        `${h}.${p}.${s}=`,
        `${h}=.${p}.${s}`,
        `${h}.${p}+.${s}`,
        `${h}.${p}.${s.slice(0, -1)}/`,
        ` ${good}`,
        `${good}\n`,
        `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`,
        `${h}.${p}.${s}é`,
      ]) {
        expectFailure(verifyTenantToken(token, tenantA, POLICY, NOW_MS), 'token_malformed');
      }
    });

    it('refuses a segment whose length can never be base64 (1 mod 4), even when signed as such', () => {
      // A header of 3n bytes encodes to 4n characters; one more character is
      // dropped by lenient decoders, leaving a header that still parses.
      let header = JSON.stringify({ alg: 'HS256', kid: 'hs' });
      while (header.length % 3 !== 0) header = header.replace('{', '{ ');
      const h4n = b64url(header);
      expect(h4n.length % 4).to.equal(0);
      const signingInput = `${h4n}A.${p}`;
      const sig = createHmac('sha256', hsKey).update(signingInput).digest('base64url');
      expectFailure(verifyTenantToken(`${signingInput}.${sig}`, tenantA, POLICY, NOW_MS), 'token_malformed');
      // The same header without the extra character verifies.
      const sigOk = createHmac('sha256', hsKey).update(`${h4n}.${p}`).digest('base64url');
      expectOk(verifyTenantToken(`${h4n}.${p}.${sigOk}`, tenantA, POLICY, NOW_MS), 'hs');
      expect((s + 'AA').length % 4).to.equal(1);
      expectFailure(verifyTenantToken(`${h}.${p}.${s}AA`, tenantA, POLICY, NOW_MS), 'token_malformed');
    });

    it('refuses a second spelling of the same signature (non-zero unused bits)', () => {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const bytes = Buffer.from(s, 'base64url');
      const twin = [...alphabet]
        .map((c) => s.slice(0, -1) + c)
        .find((alt) => alt !== s && Buffer.from(alt, 'base64url').equals(bytes));
      expect(twin, 'a second spelling exists for a 32-byte signature').to.be.a('string');
      expectFailure(verifyTenantToken(`${h}.${p}.${twin}`, tenantA, POLICY, NOW_MS), 'token_malformed');
    });

    it('refuses a header that is not JSON or not an object', () => {
      for (const header of ['not json', '[{"alg":"HS256"}]', '"HS256"', 'null', '42', '{"alg":"HS256"']) {
        const token = `${b64url(header)}.${p}.${s}`;
        expectFailure(verifyTenantToken(token, tenantA, POLICY, NOW_MS), 'token_malformed');
      }
      // Raw bytes that are not even UTF-8 text.
      expectFailure(verifyTenantToken(`${b64url(Buffer.from([0xff, 0xfe, 0x00]))}.${p}.${s}`, tenantA, POLICY, NOW_MS), 'token_malformed');
    });

    it('refuses a header whose alg is missing or not a string', () => {
      for (const header of [{ kid: 'hs' }, { alg: 256, kid: 'hs' }, { alg: null, kid: 'hs' }, { alg: ['HS256'], kid: 'hs' }]) {
        expectFailure(verifyTenantToken(craftHmac(header, claims(), hsKey), tenantA, POLICY, NOW_MS), 'token_malformed');
      }
    });

    it('refuses a header whose kid is not a string', () => {
      for (const kid of [1, null, ['hs'], { id: 'hs' }, true]) {
        expectFailure(verifyTenantToken(craftHmac({ alg: 'HS256', kid }, claims(), hsKey), tenantA, POLICY, NOW_MS), 'token_malformed');
      }
    });

    it('refuses a header with crit extensions it cannot honour (e.g. b64: false)', () => {
      const token = craftHmac({ alg: 'HS256', kid: 'hs', b64: false, crit: ['b64'] }, claims(), hsKey);
      expectFailure(verifyTenantToken(token, tenantA, POLICY, NOW_MS), 'token_malformed');
      // Without crit, the same header verifies (unknown members are ignored).
      expectOk(verifyTenantToken(craftHmac({ alg: 'HS256', kid: 'hs', x5u: 'https://evil.example' }, claims(), hsKey), tenantA, POLICY, NOW_MS), 'hs');
    });

    it('refuses a token over 16 KiB even when validly signed, and accepts one at the limit', () => {
      const sized = (length: number): string => {
        // Grow a claim until the signed token has exactly `length` characters.
        let pad = length - jwtSign(claims({ pad: '' }), hsSecret, 'HS256', 'hs').length;
        let token = '';
        for (let i = 0; i < 4 && token.length !== length; i++) {
          token = jwtSign(claims({ pad: 'x'.repeat(Math.max(0, Math.floor((pad * 3) / 4))) }), hsSecret, 'HS256', 'hs');
          pad += length - token.length;
        }
        return token;
      };
      const atLimit = sized(MAX_TOKEN_LENGTH);
      const overLimit = sized(MAX_TOKEN_LENGTH + 4);
      expect(atLimit.length).to.be.at.most(MAX_TOKEN_LENGTH).and.at.least(MAX_TOKEN_LENGTH - 3);
      expect(overLimit.length).to.be.above(MAX_TOKEN_LENGTH);
      expect(MAX_TOKEN_LENGTH).to.equal(16384);
      expectOk(verifyTenantToken(atLimit, tenantA, POLICY, NOW_MS), 'hs');
      expectFailure(verifyTenantToken(overLimit, tenantA, POLICY, NOW_MS), 'token_malformed');
      expectFailure(verifyTenantToken('a'.repeat(1_000_000), tenantA, POLICY, NOW_MS), 'token_malformed');
    });

    it('never throws for hostile input, only returns a listed failure', () => {
      const hostile: unknown[] = [
        null,
        42,
        {},
        ['a.b.c'],
        '.',
        'a.b.c',
        'eyJ9.eyJ9.eyJ9',
        `${b64url('{"alg":"RS256","kid":"rsa"}')}.${p}.${s}`,
        `${b64url('{"alg":"ES256"}')}.${p}.${s}`,
        `${b64url('{"alg":"PS512"}')}.${p}.AAAA`,
        `${b64url('{"alg":"RS256","kid":"rsa"}')}.${p}.${'A'.repeat(342)}`,
        `${b64url('{"alg":"HS256","kid":"hs","__proto__":{"kid":"x"}}')}.${p}.${s}`,
        `${b64url('{"alg":"constructor"}')}.${p}.${s}`,
        `${b64url('{"alg":"hasOwnProperty","kid":"hs"}')}.${p}.${s}`,
      ];
      for (let i = 0; i < 200; i++) hostile.push(randomBytes(i % 50).toString('base64url') + '.' + randomBytes(8).toString('base64url') + '.' + randomBytes(i).toString('base64url'));
      for (const token of hostile) {
        const result = verifyTenantToken(token as string, tenantA, POLICY, NOW_MS);
        expect(result.ok, String(token)).to.equal(false);
        if (!result.ok) expect(TOKEN_FAILURES).to.include(result.reason);
      }
    });

    it('throws (fails closed) for a non-finite clock or an invalid policy, which are programming errors', () => {
      expect(() => verifyTenantToken(good, tenantA, POLICY, Number.NaN)).to.throw(TypeError);
      expect(() => verifyTenantToken(good, tenantA, { ...POLICY, clockToleranceSeconds: -1 }, NOW_MS)).to.throw(TypeError);
      expect(() => verifyTenantToken(good, tenantA, { ...POLICY, maxLifetimeSeconds: Number.NaN }, NOW_MS)).to.throw(TypeError);
    });
  });

  it('lists every failure reason once', () => {
    expect(new Set(TOKEN_FAILURES).size).to.equal(TOKEN_FAILURES.length);
    expect(TOKEN_FAILURES).to.have.length(15);
  });
});

describe('extractBearer', () => {
  const token = 'eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln-_';

  it('returns the token of a Bearer header, whatever the case of the scheme', () => {
    expect(extractBearer(`Bearer ${token}`)).to.equal(token);
    expect(extractBearer(`bearer ${token}`)).to.equal(token);
    expect(extractBearer(`BEARER ${token}`)).to.equal(token);
    expect(extractBearer(`bEaReR ${token}`)).to.equal(token);
  });

  it('returns undefined for another scheme', () => {
    expect(extractBearer('Basic dXNlcjpwYXNz')).to.equal(undefined);
    expect(extractBearer(`Bearerx ${token}`)).to.equal(undefined);
    expect(extractBearer(`Token ${token}`)).to.equal(undefined);
    expect(extractBearer(token)).to.equal(undefined);
  });

  it('returns undefined for two tokens or extra whitespace', () => {
    expect(extractBearer(`Bearer ${token} ${token}`)).to.equal(undefined);
    expect(extractBearer(`Bearer ${token}, Basic dXNlcjpwYXNz`)).to.equal(undefined);
    expect(extractBearer(`Bearer  ${token}`)).to.equal(undefined);
    expect(extractBearer(`Bearer ${token} `)).to.equal(undefined);
    expect(extractBearer(` Bearer ${token}`)).to.equal(undefined);
    expect(extractBearer(`Bearer\t${token}`)).to.equal(undefined);
    expect(extractBearer(`Bearer ${token}\n`)).to.equal(undefined);
  });

  it('returns undefined for a missing header or token', () => {
    expect(extractBearer(undefined)).to.equal(undefined);
    expect(extractBearer('')).to.equal(undefined);
    expect(extractBearer('Bearer')).to.equal(undefined);
    expect(extractBearer('Bearer ')).to.equal(undefined);
  });

  it('returns undefined for a token with characters outside base64url and dots', () => {
    expect(extractBearer('Bearer abc+def/ghi=')).to.equal(undefined);
    expect(extractBearer('Bearer abc"def')).to.equal(undefined);
    expect(extractBearer('Bearer abcé')).to.equal(undefined);
  });
});
