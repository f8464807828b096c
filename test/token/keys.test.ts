import {
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  type RSAPSSKeyPairKeyObjectOptions,
} from 'node:crypto';
import { expect } from 'chai';
import type { Algorithm } from '../../src/model/algorithms.ts';
import { buildHmacKey, buildPublicKey, checkPublicKey, KeyMaterialError } from '../../src/token/keys.ts';
import { rsaPublicJwk } from '../support/jwks.ts';

/** Runs `fn`, expects a KeyMaterialError, returns it for further checks. */
function keyError(fn: () => unknown): KeyMaterialError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(KeyMaterialError);
    const error = err as KeyMaterialError;
    expect(error.code).to.equal('ERR_INVALID_KEY');
    expect(error.name).to.equal('KeyMaterialError');
    return error;
  }
  throw new Error('expected a KeyMaterialError, nothing was thrown');
}

function spkiPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }) as string;
}

/** A self-signed P-256 certificate (public data only; made with openssl req -x509). */
const CERTIFICATE_PEM = `-----BEGIN CERTIFICATE-----
MIIBhDCCASmgAwIBAgIUac1KxGV8Y8HjrehXvdTz3P0e2ewwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMb2luZ2F0ZS10ZXN0MB4XDTI2MTEyNTEyNTQxNVoXDTM2MTEy
MjEyNTQxNVowFzEVMBMGA1UEAwwMb2luZ2F0ZS10ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAET3gZGz3lJcxSA3o+ACm+Ngs+arJh/4z9Ap0TNl7TDs9+KVj9
9Vl+HCT/XQ8Wo1+LY0EEF1VUa7o52XjBpIBvt6NTMFEwHQYDVR0OBBYEFMDBLxtr
qNDtV+UWOB8AWGUyt8oJMB8GA1UdIwQYMBaAFMDBLxtrqNDtV+UWOB8AWGUyt8oJ
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAOHgATaUBwzOnSMm
Js/iOlKyK+Urt8lGI/wHRVCrO/H5AiEAn9se+1YTw7rqHDPIhMPsBlpIC/4x1KSH
3ZTVYSEL5fE=
-----END CERTIFICATE-----
`;

describe('buildHmacKey', () => {
  it('refuses a 31-byte secret, naming the kid and the byte count', () => {
    const error = keyError(() => buildHmacKey('gv-2026', 'HS256', 'x'.repeat(31)));
    expect(error.message).to.equal('key "gv-2026": HS256 secret is 31 bytes, at least 32 are required');
    expect(error.kid).to.equal('gv-2026');
  });

  it('accepts a 32-byte secret and builds a secret key of exactly those bytes', () => {
    const secret = 'k'.repeat(32);
    const key = buildHmacKey('gv-2026', 'HS256', secret);
    expect(key.type).to.equal('secret');
    expect(key.symmetricKeySize).to.equal(32);
    const viaKeyObject = createHmac('sha256', key).update('a.b').digest('hex');
    const viaString = createHmac('sha256', Buffer.from(secret, 'utf8')).update('a.b').digest('hex');
    expect(viaKeyObject).to.equal(viaString);
  });

  it('counts a multibyte secret in UTF-8 bytes, not characters', () => {
    // 16 characters of 2 bytes each: 32 bytes, accepted.
    expect(buildHmacKey('k', 'HS256', 'é'.repeat(16)).symmetricKeySize).to.equal(32);
    // 11 characters of 3 bytes each: 33 bytes, accepted although only 11 characters.
    expect(buildHmacKey('k', 'HS512', '€'.repeat(11)).symmetricKeySize).to.equal(33);
    // 16 characters but 31 bytes: refused.
    const error = keyError(() => buildHmacKey('k', 'HS256', 'é'.repeat(15) + 'a'));
    expect(error.message).to.contain('31 bytes');
  });

  it('refuses an empty secret', () => {
    expect(keyError(() => buildHmacKey('k', 'HS384', '')).message).to.contain('HS384 secret is 0 bytes');
  });

  it('refuses a shared secret for an asymmetric algorithm', () => {
    const error = keyError(() => buildHmacKey('k', 'RS256', 's'.repeat(40)));
    expect(error.message).to.contain('RS256 needs a public key');
  });

  it('never puts the secret in the error message', () => {
    const short = 'Sup3rSecretTenantValue-1234';
    const errors = [
      keyError(() => buildHmacKey('k', 'HS256', short)),
      keyError(() => buildHmacKey('k', 'ES256', short + short)),
    ];
    for (const error of errors) {
      expect(error.message).not.to.contain(short);
      expect(error.message).not.to.contain('Sup3r');
      expect(String(error.stack)).not.to.contain(short);
    }
  });
});

describe('buildPublicKey', () => {
  const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });

  it('accepts an RSA 2048 SPKI key for RS256, RS512 and PS256', () => {
    for (const alg of ['RS256', 'RS512', 'PS256'] as const) {
      const key = buildPublicKey('r', alg, spkiPem(rsa2048.publicKey));
      expect(key.type).to.equal('public');
      expect(key.asymmetricKeyType).to.equal('rsa');
      expect(key.asymmetricKeyDetails?.modulusLength).to.equal(2048);
    }
  });

  it('accepts a PKCS#1 "RSA PUBLIC KEY" PEM', () => {
    const pem = rsa2048.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string;
    expect(pem).to.contain('BEGIN RSA PUBLIC KEY');
    expect(buildPublicKey('r', 'RS256', pem).equals(rsa2048.publicKey)).to.equal(true);
  });

  it('refuses an RSA key with a small public exponent (e = 3), however long its modulus', () => {
    const smallE = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
    const error = keyError(() => buildPublicKey('e3', 'RS256', spkiPem(smallE.publicKey)));
    expect(error.message).to.contain('public exponent 3');
  });

  /** An RSA public key PEM of `bits` bits with exponent `e`, built from a JWK (no key generation). */
  const rsaPem = (bits: number, e?: bigint | 'n-2'): string =>
    spkiPem(createPublicKey({ key: rsaPublicJwk(bits, e), format: 'jwk' }));

  it('accepts RSA moduli from 2048 to 8192 bits, and refuses one over 8192 (a 16384-bit key makes each verification slow)', () => {
    for (const bits of [2048, 3072, 4096, 8192]) {
      expect(buildPublicKey('r', 'RS256', rsaPem(bits)).asymmetricKeyDetails?.modulusLength).to.equal(bits);
    }
    const error = keyError(() => buildPublicKey('huge', 'RS256', rsaPem(16384)));
    expect(error.message).to.equal('key "huge": RS256 key is 16384 bits, at most 8192 are accepted');
    keyError(() => buildPublicKey('huge', 'PS256', rsaPem(8200)));
  });

  it('accepts odd public exponents from 65537 to 2^32, and refuses larger or even ones', () => {
    for (const e of [65537n, 2n ** 31n + 1n, 2n ** 32n - 1n]) {
      expect(buildPublicKey('r', 'RS256', rsaPem(2048, e)).asymmetricKeyDetails?.publicExponent).to.equal(e);
    }
    for (const e of [2n ** 32n + 1n, 2n ** 64n + 1n, 65538n, 65535n]) {
      const error = keyError(() => buildPublicKey('e', 'RS256', rsaPem(2048, e)));
      expect(error.message).to.contain(`public exponent ${e}; an odd exponent from 65537 to 2^32 is required`);
    }
  });

  it('refuses an exponent of n - 2 (which made every kid-less token cost most of a second), naming its size only', () => {
    const error = keyError(() => buildPublicKey('slow', 'RS256', rsaPem(4096, 'n-2')));
    expect(error.message).to.equal(
      'key "slow": RS256 key has public exponent of 4096 bits; an odd exponent from 65537 to 2^32 is required',
    );
    // checkPublicKey, the check shared with JWKs, refuses it as well.
    const key = createPublicKey({ key: rsaPublicJwk(2048, 'n-2'), format: 'jwk' });
    keyError(() => checkPublicKey('slow', 'PS256', key));
  });

  it('refuses an RSA 1024 key', () => {
    const error = keyError(() => buildPublicKey('old', 'RS256', spkiPem(rsa1024.publicKey)));
    expect(error.message).to.equal('key "old": RS256 key is 1024 bits, at least 2048 are required');
  });

  it('refuses private key PEMs of every encoding, although node:crypto would derive a public key from them', () => {
    const pems = [
      rsa2048.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      rsa2048.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
      p256.privateKey.export({ type: 'sec1', format: 'pem' }) as string,
      rsa2048.privateKey.export({
        type: 'pkcs8',
        format: 'pem',
        cipher: 'aes-256-cbc',
        passphrase: 'passphrase',
      }) as string,
    ];
    // Premise: without the guard, the unencrypted ones would be accepted silently.
    expect(createPublicKey(pems[0]!).type).to.equal('public');
    for (const [index, pem] of pems.entries()) {
      const alg: Algorithm = index === 2 ? 'ES256' : 'RS256';
      const error = keyError(() => buildPublicKey('leak', alg, pem));
      expect(error.message).to.contain('private key');
      // The message carries no key material.
      const body = pem.split('\n')[1]!;
      expect(error.message).not.to.contain(body);
    }
  });

  it('refuses a certificate, although node:crypto would extract its public key', () => {
    expect(createPublicKey(CERTIFICATE_PEM).asymmetricKeyDetails?.namedCurve).to.equal('prime256v1');
    const error = keyError(() => buildPublicKey('cert', 'ES256', CERTIFICATE_PEM));
    expect(error.message).to.contain('certificate');
  });

  it('accepts each EC curve for its own ES algorithm', () => {
    expect(buildPublicKey('e', 'ES256', spkiPem(p256.publicKey)).asymmetricKeyDetails?.namedCurve).to.equal(
      'prime256v1',
    );
    expect(buildPublicKey('e', 'ES384', spkiPem(p384.publicKey)).asymmetricKeyDetails?.namedCurve).to.equal(
      'secp384r1',
    );
    expect(buildPublicKey('e', 'ES512', spkiPem(p521.publicKey)).asymmetricKeyDetails?.namedCurve).to.equal(
      'secp521r1',
    );
  });

  it('refuses an EC key on the wrong curve for the algorithm', () => {
    expect(keyError(() => buildPublicKey('e', 'ES256', spkiPem(p384.publicKey))).message).to.equal(
      'key "e": ES256 needs an EC key on prime256v1, got secp384r1',
    );
    expect(keyError(() => buildPublicKey('e', 'ES512', spkiPem(p256.publicKey))).message).to.contain(
      'got prime256v1',
    );
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    expect(keyError(() => buildPublicKey('e', 'ES256', spkiPem(k1.publicKey))).message).to.contain('got secp256k1');
  });

  it('refuses a key whose type does not fit the algorithm family', () => {
    expect(keyError(() => buildPublicKey('x', 'RS256', spkiPem(p256.publicKey))).message).to.contain(
      'RS256 needs an RSA key, got ec',
    );
    expect(keyError(() => buildPublicKey('x', 'ES256', spkiPem(rsa2048.publicKey))).message).to.contain(
      'got rsa',
    );
    const ed = generateKeyPairSync('ed25519');
    expect(keyError(() => buildPublicKey('x', 'ES256', spkiPem(ed.publicKey))).message).to.contain('got ed25519');
    expect(keyError(() => buildPublicKey('x', 'HS256', spkiPem(rsa2048.publicKey))).message).to.contain(
      'HS256 needs a shared secret',
    );
  });

  it('accepts an RSA-PSS key for PS256 only, and only with fitting restrictions', () => {
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    expect(buildPublicKey('p', 'PS256', spkiPem(pss.publicKey)).asymmetricKeyType).to.equal('rsa-pss');
    expect(keyError(() => buildPublicKey('p', 'RS256', spkiPem(pss.publicKey))).message).to.contain(
      'RS256 needs an RSA key, got rsa-pss',
    );
    // @types/node 20 types saltLength as a string; node:crypto wants a number.
    const sha512Only = generateKeyPairSync('rsa-pss', {
      modulusLength: 2048,
      hashAlgorithm: 'sha512',
      mgf1HashAlgorithm: 'sha512',
      saltLength: 64,
    } as unknown as RSAPSSKeyPairKeyObjectOptions);
    expect(buildPublicKey('p', 'PS512', spkiPem(sha512Only.publicKey)).asymmetricKeyType).to.equal('rsa-pss');
    expect(keyError(() => buildPublicKey('p', 'PS256', spkiPem(sha512Only.publicKey))).message).to.contain(
      'restricted to sha512',
    );
  });

  it('refuses garbage and empty PEMs', () => {
    const garbage = [
      '',
      '   ',
      'hello',
      '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
      '-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n',
      spkiPem(rsa2048.publicKey).replace(/[A-Za-z]{8}/, '!!!!!!!!'),
    ];
    for (const pem of garbage) {
      const error = keyError(() => buildPublicKey('g', 'RS256', pem));
      expect(error.message).to.match(/^key "g": /);
    }
  });
});
