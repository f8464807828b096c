import { createPublicKey, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { isHmac, type Algorithm } from '../model/algorithms.ts';

/**
 * Building verification keys from whitelist material. Runs at whitelist load
 * time only, never per request: every check that can be made once is made
 * here, so verification can trust a TenantKey's `key` to fit its `alg`.
 */

/** Smallest HMAC secret accepted, in bytes (UTF-8 encoded). */
export const MIN_HMAC_SECRET_BYTES = 32;

/** Smallest RSA modulus accepted, in bits. */
export const MIN_RSA_MODULUS_BITS = 2048;
/** Largest RSA modulus accepted, in bits: a verification costs about the square of it. */
export const MAX_RSA_MODULUS_BITS = 8192;
export const MIN_RSA_PUBLIC_EXPONENT = 65537n;
/**
 * Largest RSA public exponent accepted. A verification costs one modular
 * multiplication per bit of it: e = n - 2 made one RS256 verification take
 * most of a second, for a token anyone can send.
 */
export const MAX_RSA_PUBLIC_EXPONENT = 2n ** 32n;

/** The curve each ECDSA algorithm requires, as node:crypto names it. */
const EC_CURVES: Readonly<Record<string, string>> = {
  ES256: 'prime256v1',
  ES384: 'secp384r1',
  ES512: 'secp521r1',
};

/**
 * Key material refused at load time. The message names the kid and the
 * problem, never the secret or key material itself.
 */
export class KeyMaterialError extends Error {
  readonly code = 'ERR_INVALID_KEY';
  readonly kid: string;

  constructor(kid: string, problem: string) {
    super(`key ${JSON.stringify(kid)}: ${problem}`);
    this.name = 'KeyMaterialError';
    this.kid = kid;
  }
}

/**
 * An HS256/HS384/HS512 key from a shared secret (its UTF-8 bytes): `reuse`
 * itself when it holds exactly those bytes. A rebuilt tenant whose secret did
 * not change thus keeps its key object: 100,000 of them replaced at once (a
 * reformatted whitelist) left a full collection 0.25-0.35 s of finalizers.
 */
export function buildHmacKey(kid: string, alg: Algorithm, secret: string, reuse?: KeyObject): KeyObject {
  const bytes = hmacSecretBytes(kid, alg, secret);
  if (reuse?.type === 'secret' && reuse.symmetricKeySize === bytes.length && timingSafeEqual(reuse.export(), bytes)) return reuse;
  return createSecretKey(bytes);
}

/**
 * The checks of {@link buildHmacKey} without the key object: the secret's
 * bytes, or a KeyMaterialError. A tenant validated on another thread (whose
 * key objects could not cross) is checked with exactly these.
 */
export function hmacSecretBytes(kid: string, alg: Algorithm, secret: string): Buffer {
  if (!isHmac(alg)) {
    throw new KeyMaterialError(kid, `${alg} needs a public key, not a shared secret`);
  }
  if (typeof secret !== 'string') {
    throw new KeyMaterialError(kid, `${alg} secret must be a string`);
  }
  const bytes = Buffer.from(secret, 'utf8');
  if (bytes.length < MIN_HMAC_SECRET_BYTES) {
    throw new KeyMaterialError(
      kid,
      `${alg} secret is ${bytes.length} bytes, at least ${MIN_HMAC_SECRET_BYTES} are required`,
    );
  }
  return bytes;
}

/**
 * An RS*, PS* or ES* key from a PEM public key (SPKI `PUBLIC KEY` or PKCS#1
 * `RSA PUBLIC KEY`). Private keys are refused (node:crypto would silently
 * derive the public half, leaving the private key in the whitelist), as are
 * certificates (their validity period would silently be ignored).
 */
export function buildPublicKey(kid: string, alg: Algorithm, pem: string): KeyObject {
  if (isHmac(alg)) {
    throw new KeyMaterialError(kid, `${alg} needs a shared secret, not a public key`);
  }
  if (typeof pem !== 'string' || pem.trim() === '') {
    throw new KeyMaterialError(kid, `${alg} public key is empty`);
  }
  if (pem.includes('PRIVATE KEY')) {
    throw new KeyMaterialError(
      kid,
      'PEM holds a private key; put only the public key in the whitelist (and treat the private key as leaked)',
    );
  }
  if (pem.includes('CERTIFICATE')) {
    throw new KeyMaterialError(
      kid,
      'PEM holds a certificate; put its public key (`openssl x509 -pubkey -noout`) in the whitelist',
    );
  }
  if (!pem.includes('PUBLIC KEY')) {
    throw new KeyMaterialError(kid, 'not a PEM public key (expected "-----BEGIN PUBLIC KEY-----")');
  }

  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new KeyMaterialError(kid, `unreadable PEM public key (${detail})`);
  }
  return checkPublicKey(kid, alg, key);
}

/**
 * The checks every RS*, PS* or ES* verification key must pass, whatever it
 * was built from (PEM in the whitelist, or a JWK): a public key of the type
 * the alg needs, an RSA modulus of at least 2048 bits, RSA-PSS restrictions
 * that fit the alg, the EC curve the alg names. Returns the key unchanged.
 */
export function checkPublicKey(kid: string, alg: Algorithm, key: KeyObject): KeyObject {
  if (isHmac(alg)) {
    throw new KeyMaterialError(kid, `${alg} needs a shared secret, not a public key`);
  }
  if (key.type !== 'public') {
    throw new KeyMaterialError(kid, `expected a public key, got a ${key.type} key`);
  }

  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  const family = alg.slice(0, 2);

  if (family === 'RS' || family === 'PS') {
    const typeOk = type === 'rsa' || (family === 'PS' && type === 'rsa-pss');
    if (!typeOk) {
      throw new KeyMaterialError(
        kid,
        `${alg} needs an RSA${family === 'PS' ? ' or RSA-PSS' : ''} key, got ${type ?? 'an unknown key type'}`,
      );
    }
    const bits = details.modulusLength;
    if (bits === undefined || bits < MIN_RSA_MODULUS_BITS) {
      throw new KeyMaterialError(
        kid,
        `${alg} key is ${bits ?? 'of unknown size'} bits, at least ${MIN_RSA_MODULUS_BITS} are required`,
      );
    }
    if (bits > MAX_RSA_MODULUS_BITS) {
      throw new KeyMaterialError(kid, `${alg} key is ${bits} bits, at most ${MAX_RSA_MODULUS_BITS} are accepted`);
    }
    // e = 1 makes "signature = padded digest" verify without any private key;
    // small or even exponents are never legitimate (NIST SP 800-56B: odd,
    // 65537 <= e < 2^256), and a huge one makes each verification slow.
    const exponent = details.publicExponent;
    if (
      exponent === undefined ||
      exponent < MIN_RSA_PUBLIC_EXPONENT ||
      exponent > MAX_RSA_PUBLIC_EXPONENT ||
      exponent % 2n === 0n
    ) {
      throw new KeyMaterialError(
        kid,
        `${alg} key has public exponent ${describeExponent(exponent)}; an odd exponent from 65537 to 2^32 is required`,
      );
    }
    if (type === 'rsa-pss') checkPssParameters(kid, alg, details);
    return key;
  }

  if (family === 'ES') {
    const curve = EC_CURVES[alg];
    if (type !== 'ec') {
      throw new KeyMaterialError(kid, `${alg} needs an EC key on ${curve}, got ${type ?? 'an unknown key type'}`);
    }
    if (details.namedCurve !== curve) {
      throw new KeyMaterialError(
        kid,
        `${alg} needs an EC key on ${curve}, got ${details.namedCurve ?? 'an unknown curve'}`,
      );
    }
    return key;
  }

  throw new KeyMaterialError(kid, `unsupported algorithm ${String(alg)}`);
}

/** An exponent for a message: in full when short, else by its size (e = n - 2 has thousands of digits). */
function describeExponent(exponent: bigint | undefined): string {
  if (exponent === undefined) return 'unknown';
  const text = exponent.toString();
  return text.length <= 20 ? text : `of ${exponent.toString(2).length} bits`;
}

/**
 * An RSA-PSS key may carry restrictions; when it does they must fit the alg
 * (hash, MGF1 hash, and a salt no longer than the digest, which is what JWS
 * uses), or every verification would fail.
 */
function checkPssParameters(
  kid: string,
  alg: Algorithm,
  details: NonNullable<KeyObject['asymmetricKeyDetails']>,
): void {
  const size = Number(alg.slice(2));
  const hash = `sha${size}`;
  const { hashAlgorithm, mgf1HashAlgorithm, saltLength } = details;
  if (hashAlgorithm !== undefined && hashAlgorithm !== hash) {
    throw new KeyMaterialError(kid, `${alg} RSA-PSS key is restricted to ${hashAlgorithm}, ${hash} is required`);
  }
  if (mgf1HashAlgorithm !== undefined && mgf1HashAlgorithm !== hash) {
    throw new KeyMaterialError(
      kid,
      `${alg} RSA-PSS key is restricted to MGF1 with ${mgf1HashAlgorithm}, ${hash} is required`,
    );
  }
  if (saltLength !== undefined && saltLength > size / 8) {
    throw new KeyMaterialError(
      kid,
      `${alg} RSA-PSS key requires a salt of at least ${saltLength} bytes, JWS uses ${size / 8}`,
    );
  }
}
