import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { keySet } from '../../src/token/key.ts';
import { JwksError, keyFromJwk, MAX_JWKS_KEYS, parseJwks, readJwk, readJwks } from '../../src/token/jwk.ts';
import { verifyTenantToken, type TokenPolicy } from '../../src/token/verify.ts';
import { rsaPublicJwk, signWith, testKey, type AsymmetricAlg, type TestKey } from '../support/jwks.ts';

const POLICY: TokenPolicy = { clockToleranceSeconds: 30, maxLifetimeSeconds: 3600 };

function jwksError(fn: () => unknown): JwksError {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(JwksError);
    return error as JwksError;
  }
  throw new Error('expected a JwksError, nothing was thrown');
}

function skipReason(jwk: unknown): string {
  const result = readJwk(jwk);
  if (result.ok) throw new Error(`expected the JWK to be skipped, it was accepted as ${result.key.kid}`);
  expect(keyFromJwk(jwk)).to.equal(undefined);
  return result.reason;
}

describe('keyFromJwk', () => {
  const rsa = testKey('rsa-1', 'RS256');
  const keys = new Map<AsymmetricAlg, TestKey>();
  before(() => {
    for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const) {
      keys.set(alg, alg.startsWith('ES') ? testKey(`k-${alg}`, alg) : { ...rsa, kid: `k-${alg}`, alg, jwk: { ...rsa.jwk, kid: `k-${alg}`, alg } });
    }
  });

  for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const) {
    it(`builds a ${alg} key that verifies a token signed with the matching private key`, () => {
      const test = keys.get(alg) as TestKey;
      const key = keyFromJwk(test.jwk);
      expect(key).to.not.equal(undefined);
      expect(key?.kid).to.equal(test.kid);
      expect(key?.alg).to.equal(alg);
      expect(key?.enabled).to.equal(true);
      expect(key?.key.type).to.equal('public');
      const result = verifyTenantToken(signWith(test, { sub: 'x' }), keySet([key!]), POLICY, Date.now());
      expect(result.ok).to.equal(true);
    });
  }

  it('pins the algorithm of the JWK: an RS256 key refuses a PS256 token with the same kid', () => {
    const key = keyFromJwk(rsa.jwk)!;
    const ps = signWith({ ...rsa, alg: 'PS256' }, { sub: 'x' });
    expect(verifyTenantToken(ps, keySet([key]), POLICY, Date.now())).to.deep.equal({ ok: false, reason: 'token_algorithm' });
  });

  it('accepts a JWK without `use`, with key_ops holding verify, and with informational members', () => {
    const { use: _use, ...withoutUse } = rsa.jwk;
    expect(keyFromJwk(withoutUse)?.kid).to.equal('rsa-1');
    expect(keyFromJwk({ ...rsa.jwk, key_ops: ['verify'] })?.kid).to.equal('rsa-1');
    expect(keyFromJwk({ ...rsa.jwk, x5t: 'abc', ext: true })?.kid).to.equal('rsa-1');
  });

  it('skips a JWK without alg: the algorithm is never taken from a token', () => {
    const { alg: _alg, ...noAlg } = rsa.jwk;
    expect(skipReason(noAlg)).to.equal('no_alg');
  });

  it('skips a JWK whose use is enc', () => {
    expect(skipReason({ ...rsa.jwk, use: 'enc' })).to.equal('use_not_sig');
  });

  it('skips a JWK whose key_ops lacks verify', () => {
    expect(skipReason({ ...rsa.jwk, key_ops: ['encrypt'] })).to.equal('key_ops_no_verify');
    expect(skipReason({ ...rsa.jwk, key_ops: 'verify' })).to.equal('key_ops_no_verify');
  });

  it('skips HS*, none, EdDSA, RSA-OAEP and non-string algorithms', () => {
    for (const alg of ['HS256', 'HS512', 'none', 'EdDSA', 'RSA-OAEP', 'rs256', 42]) {
      expect(skipReason({ ...rsa.jwk, alg }), String(alg)).to.equal('alg_unsupported');
    }
  });

  it('skips a symmetric (oct) key, even with an asymmetric alg', () => {
    expect(skipReason({ kty: 'oct', kid: 'o', alg: 'HS256', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA' })).to.equal(
      'alg_unsupported',
    );
    expect(skipReason({ kty: 'oct', kid: 'o', alg: 'RS256', k: 'c2VjcmV0' })).to.equal('kty_unsupported');
  });

  it('skips an OKP (Ed25519) key', () => {
    const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
    expect(skipReason({ ...jwk, kid: 'ed', alg: 'EdDSA' })).to.equal('alg_unsupported');
    expect(skipReason({ ...jwk, kid: 'ed', alg: 'ES256' })).to.equal('kty_unsupported');
  });

  it('skips a JWK carrying private members, so a leaked private key is never used', () => {
    const privateJwk = rsa.privateKey.export({ format: 'jwk' });
    expect(skipReason({ ...privateJwk, kid: 'leak', alg: 'RS256' })).to.equal('private_key');
    const ec = testKey('ec', 'ES256');
    expect(skipReason({ ...ec.privateKey.export({ format: 'jwk' }), kid: 'leak', alg: 'ES256' })).to.equal('private_key');
    expect(skipReason({ ...rsa.jwk, d: 'AQAB' })).to.equal('private_key');
  });

  it('skips an RSA key with public exponent 1, which would let anyone forge a signature', () => {
    const rsa = testKey('e1', 'RS256');
    const forged = { ...rsa.jwk, e: 'AQ' };
    const result = readJwk(forged);
    expect(result.ok).to.equal(false);
    if (!result.ok) {
      expect(result.reason).to.equal('bad_key');
      expect(result.detail).to.contain('public exponent 1');
    }
    // And the forgery itself: a "signature" that is just the padded digest would verify with e = 1.
    expect(keyFromJwk(forged)).to.equal(undefined);
  });

  it('skips an RSA key over 8192 bits, and one whose exponent is above 2^32, even or n - 2', () => {
    const detail = (jwk: Record<string, unknown>): string => {
      const result = readJwk({ ...jwk, kid: 'big', alg: 'RS256', use: 'sig' });
      if (result.ok) throw new Error('expected the JWK to be skipped');
      expect(result.reason).to.equal('bad_key');
      return result.detail;
    };
    expect(detail(rsaPublicJwk(16384))).to.contain('16384 bits, at most 8192');
    expect(detail(rsaPublicJwk(8193))).to.contain('8193 bits, at most 8192');
    expect(detail(rsaPublicJwk(2048, 'n-2'))).to.contain('public exponent of 2048 bits');
    expect(detail(rsaPublicJwk(2048, 2n ** 32n + 1n))).to.contain('public exponent 4294967297');
    expect(detail(rsaPublicJwk(2048, 65538n))).to.contain('public exponent 65538');
    for (const [bits, e] of [[8192, 65537n], [2048, 2n ** 32n - 1n]] as const) {
      const result = readJwk({ ...rsaPublicJwk(bits, e), kid: 'ok', alg: 'PS256' });
      expect(result.ok, JSON.stringify(result)).to.equal(true);
    }
  });

  it('skips an RSA key under 2048 bits', () => {
    const small = testKey('small', 'RS256', 1024);
    const result = readJwk(small.jwk);
    expect(result.ok).to.equal(false);
    if (!result.ok) {
      expect(result.reason).to.equal('bad_key');
      expect(result.detail).to.contain('at least 2048');
    }
  });

  it('skips an EC key on a curve its alg does not name, and a key of the wrong type for its alg', () => {
    const p384 = testKey('p384', 'ES384');
    expect(skipReason({ ...p384.jwk, alg: 'ES256' })).to.equal('curve_mismatch');
    expect(skipReason({ ...p384.jwk, alg: 'RS256' })).to.equal('kty_mismatch');
    expect(skipReason({ ...rsa.jwk, alg: 'ES256' })).to.equal('kty_mismatch');
  });

  it('skips an EC point that is not on the curve and RSA members that are not strings', () => {
    const ec = testKey('ec', 'ES256');
    const x = ec.jwk.x as string;
    expect(skipReason({ ...ec.jwk, x: `${x.slice(0, -2)}AA` })).to.equal('bad_key');
    expect(skipReason({ ...rsa.jwk, n: 12345 })).to.equal('bad_key');
  });

  it('skips a JWK without a string kid, and non-objects', () => {
    const { kid: _kid, ...noKid } = rsa.jwk;
    expect(skipReason(noKid)).to.equal('no_kid');
    expect(skipReason({ ...rsa.jwk, kid: 7 })).to.equal('no_kid');
    expect(skipReason({ ...rsa.jwk, kid: '' })).to.equal('no_kid');
    expect(skipReason({ ...rsa.jwk, kid: 'k'.repeat(257) })).to.equal('no_kid');
    expect(skipReason(null)).to.equal('not_object');
    expect(skipReason([rsa.jwk])).to.equal('not_object');
  });
});

describe('parseJwks', () => {
  const a = testKey('a', 'RS256');
  const b = testKey('b', 'ES256');

  it('returns the usable keys in order and reports the skipped ones by kid and reason', () => {
    const text = JSON.stringify({ keys: [a.jwk, { ...b.jwk, use: 'enc', kid: 'skip-me' }, b.jwk] });
    expect(parseJwks(text).map((k) => k.kid)).to.deep.equal(['a', 'b']);
    expect(parseJwks(Buffer.from(text)).map((k) => k.alg)).to.deep.equal(['RS256', 'ES256']);
    const parsed = readJwks(text);
    expect(parsed.skipped.map((s) => [s.kid, s.reason])).to.deep.equal([['skip-me', 'use_not_sig']]);
  });

  it('refuses the whole set when two usable keys share a kid', () => {
    const error = jwksError(() => parseJwks(JSON.stringify({ keys: [a.jwk, { ...b.jwk, kid: 'a' }] })));
    expect(error.code).to.equal('ERR_JWKS_DUPLICATE_KID');
    expect(error.message).to.contain('"a"');
  });

  it('keeps a set where a kid repeats only on a skipped (enc) key, as RFC 7517 allows', () => {
    const keys = parseJwks(JSON.stringify({ keys: [a.jwk, { ...b.jwk, kid: 'a', use: 'enc' }] }));
    expect(keys.map((k) => k.kid)).to.deep.equal(['a']);
  });

  it('refuses malformed JSON, duplicate members and invalid UTF-8', () => {
    expect(jwksError(() => parseJwks('{"keys": [')).code).to.equal('ERR_JWKS_JSON');
    expect(jwksError(() => parseJwks('{"keys": [], "keys": []}')).code).to.equal('ERR_JWKS_JSON');
    expect(jwksError(() => parseJwks(Buffer.from([0x7b, 0xff, 0x7d]))).code).to.equal('ERR_JWKS_ENCODING');
  });

  it('refuses a document without a keys array', () => {
    expect(jwksError(() => parseJwks('[]')).code).to.equal('ERR_JWKS_SHAPE');
    expect(jwksError(() => parseJwks('{}')).code).to.equal('ERR_JWKS_SHAPE');
    expect(jwksError(() => parseJwks('{"keys": {}}')).code).to.equal('ERR_JWKS_SHAPE');
  });

  it(`refuses a set of more than ${MAX_JWKS_KEYS} keys and accepts one of exactly ${MAX_JWKS_KEYS}`, () => {
    const entries = (n: number) => Array.from({ length: n }, (_, i) => ({ kty: 'oct', kid: `k${i}` }));
    expect(jwksError(() => parseJwks(JSON.stringify({ keys: entries(MAX_JWKS_KEYS + 1) }))).code).to.equal('ERR_JWKS_TOO_MANY_KEYS');
    expect(parseJwks(JSON.stringify({ keys: entries(MAX_JWKS_KEYS) }))).to.deep.equal([]);
  });

  it('never puts key material in an error message', () => {
    const error = jwksError(() => parseJwks(JSON.stringify({ keys: [a.jwk, a.jwk] })));
    expect(error.message).to.not.contain(a.jwk.n as string);
    expect(error.message).to.not.contain((a.jwk.n as string).slice(0, 20));
  });
});
