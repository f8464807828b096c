import { createSecretKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { ALGORITHMS, isHmac, type Algorithm } from '../../src/model/algorithms.ts';
import { keySet } from '../../src/token/key.ts';
import { buildHmacKey, buildPublicKey } from '../../src/token/keys.ts';
import { verifyTenantToken, type TokenPolicy } from '../../src/token/verify.ts';

/**
 * Tokens minted by jose, an implementation independent of both ours and
 * jsonwebtoken (which now checks our signatures): each algorithm verifies
 * with its own key and is refused with another key of the same kind.
 */

const POLICY: TokenPolicy = { clockToleranceSeconds: 30, maxLifetimeSeconds: 3600 };
const OIN = '00000001234567890000';
const CURVES: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

interface Material {
  readonly signing: KeyObject;
  readonly verifying: KeyObject;
}

/** A signing key and the verification key the whitelist would hold, built through keys.ts. */
function material(alg: Algorithm): Material {
  if (isHmac(alg)) {
    const secret = randomBytes(64).toString('base64url');
    return { signing: createSecretKey(Buffer.from(secret)), verifying: buildHmacKey(alg, alg, secret) };
  }
  const pair = alg.startsWith('ES')
    ? generateKeyPairSync('ec', { namedCurve: CURVES[alg]! })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  return { signing: pair.privateKey, verifying: buildPublicKey(alg, alg, pem) };
}

function mint(alg: Algorithm, key: KeyObject, kid?: string): Promise<string> {
  return new SignJWT({ oin: OIN, scope: 'read' })
    .setProtectedHeader(kid === undefined ? { alg, typ: 'JWT' } : { alg, kid, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('10m')
    .setIssuer('https://idp.example')
    .sign(key);
}

describe('verifyTenantToken with tokens minted by jose', () => {
  for (const alg of ALGORITHMS) {
    describe(alg, () => {
      const own = material(alg);
      const other = material(alg);
      const keys = keySet([{ kid: 'k', alg, key: own.verifying, enabled: true }]);

      it('accepts a token signed with the key, with and without kid', async () => {
        for (const kid of ['k', undefined]) {
          const result = verifyTenantToken(await mint(alg, own.signing, kid), keys, { ...POLICY, issuer: 'https://idp.example' }, Date.now());
          expect(result.ok, JSON.stringify(result)).to.equal(true);
          if (result.ok) {
            expect(result.kid).to.equal('k');
            expect(result.claims).to.include({ oin: OIN, scope: 'read', iss: 'https://idp.example' });
          }
        }
      });

      it('refuses a token signed with another key of the same kind', async () => {
        for (const kid of ['k', undefined]) {
          const result = verifyTenantToken(await mint(alg, other.signing, kid), keys, POLICY, Date.now());
          expect(result).to.deep.equal({ ok: false, reason: 'token_bad_signature' });
        }
      });
    });
  }
});
