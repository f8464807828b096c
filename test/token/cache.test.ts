import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { MAX_CACHED_TOKEN_LENGTH, VerifiedTokenCache } from '../../src/token/cache.ts';
import { keySet, type TenantKey } from '../../src/token/key.ts';
import { buildHmacKey } from '../../src/token/keys.ts';
import { verifyTenantToken, type TokenPolicy } from '../../src/token/verify.ts';

const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const NOW = NOW_MS / 1000;
const POLICY: TokenPolicy = { clockToleranceSeconds: 30, maxLifetimeSeconds: 3600 };
const SECRET_A = 'cache-test-secret-a-0123456789abcdef';
const SECRET_B = 'cache-test-secret-b-0123456789abcdef';

function key(kid: string, secret: string, extra: Partial<TenantKey> = {}): TenantKey {
  return { kid, alg: 'HS256', key: buildHmacKey(kid, 'HS256', secret), enabled: true, ...extra };
}

function token(secret: string, kid: string, claims: Record<string, unknown> = {}): string {
  return jwt.sign({ oin: 'A', iat: NOW - 10, exp: NOW + 300, ...claims }, secret, { algorithm: 'HS256', keyid: kid, noTimestamp: true });
}

describe('VerifiedTokenCache with verifyTenantToken', () => {
  it('answers a repeated token from the cache with the same claims as full verification', () => {
    const cache = new VerifiedTokenCache();
    const keys = keySet([key('a1', SECRET_A)]);
    const t = token(SECRET_A, 'a1');
    const first = verifyTenantToken(t, keys, POLICY, NOW_MS, cache);
    expect(cache.size).to.equal(1);
    const second = verifyTenantToken(t, keys, POLICY, NOW_MS, cache);
    expect(second).to.deep.equal(first);
    expect(second.ok).to.equal(true);
  });

  it('is keyed by the full token: a token differing in one signature character is verified and refused', () => {
    const cache = new VerifiedTokenCache();
    const keys = keySet([key('a1', SECRET_A)]);
    const t = token(SECRET_A, 'a1');
    verifyTenantToken(t, keys, POLICY, NOW_MS, cache);
    const last = t.at(-2) === 'A' ? 'B' : 'A';
    const tampered = `${t.slice(0, -2)}${last}${t.at(-1)}`;
    const result = verifyTenantToken(tampered, keys, POLICY, NOW_MS, cache);
    expect(result.ok).to.equal(false);
  });

  it("never serves one tenant's verified token to another tenant's key set, even with the same kid", () => {
    const cache = new VerifiedTokenCache();
    const tenantA = keySet([key('k', SECRET_A)]);
    const tenantB = keySet([key('k', SECRET_B)]);
    const t = token(SECRET_A, 'k');
    expect(verifyTenantToken(t, tenantA, POLICY, NOW_MS, cache).ok).to.equal(true);
    expect(verifyTenantToken(t, tenantB, POLICY, NOW_MS, cache)).to.deep.equal({ ok: false, reason: 'token_bad_signature' });
  });

  it('honours exp on every hit: a cached token is refused once it expires', () => {
    const cache = new VerifiedTokenCache();
    const keys = keySet([key('a1', SECRET_A)]);
    const t = token(SECRET_A, 'a1', { exp: NOW + 60 });
    expect(verifyTenantToken(t, keys, POLICY, NOW_MS, cache).ok).to.equal(true);
    const later = NOW_MS + (60 + 31) * 1000;
    expect(verifyTenantToken(t, keys, POLICY, later, cache)).to.deep.equal({ ok: false, reason: 'token_expired' });
  });

  it("re-checks the key's window: a cached token stops working when its key expires", () => {
    const cache = new VerifiedTokenCache();
    const keys = keySet([key('a1', SECRET_A, { expiresAt: NOW_MS + 5_000 })]);
    const t = token(SECRET_A, 'a1');
    expect(verifyTenantToken(t, keys, POLICY, NOW_MS, cache).ok).to.equal(true);
    expect(verifyTenantToken(t, keys, POLICY, NOW_MS + 6_000, cache)).to.deep.equal({ ok: false, reason: 'token_key_inactive' });
  });

  it('answers exactly as full verification for a changed policy (issuer) on a hit', () => {
    const cache = new VerifiedTokenCache();
    const keys = keySet([key('a1', SECRET_A)]);
    const t = token(SECRET_A, 'a1');
    verifyTenantToken(t, keys, POLICY, NOW_MS, cache);
    const strict = { ...POLICY, issuer: 'https://idp.example' };
    expect(verifyTenantToken(t, keys, strict, NOW_MS, cache)).to.deep.equal(verifyTenantToken(t, keys, strict, NOW_MS));
  });

  it('does not cache refused tokens', () => {
    const cache = new VerifiedTokenCache();
    const keys = keySet([key('a1', SECRET_A)]);
    verifyTenantToken(token(SECRET_B, 'a1'), keys, POLICY, NOW_MS, cache);
    verifyTenantToken(token(SECRET_A, 'a1', { exp: NOW - 100, iat: NOW - 200 }), keys, POLICY, NOW_MS, cache);
    expect(cache.size).to.equal(0);
  });

  it('is bounded: past maxEntries the oldest entry goes first', () => {
    const cache = new VerifiedTokenCache(3);
    const keys = keySet([key('a1', SECRET_A)]);
    const tokens = [1, 2, 3, 4].map((n) => token(SECRET_A, 'a1', { n }));
    for (const t of tokens) verifyTenantToken(t, keys, POLICY, NOW_MS, cache);
    expect(cache.size).to.equal(3);
    expect(cache.get(tokens[0] as string, keys)).to.equal(undefined);
    expect(cache.get(tokens[3] as string, keys)).to.not.equal(undefined);
  });

  it('never keeps a token longer than 2 KiB, which is still verified every time', () => {
    const cache = new VerifiedTokenCache();
    const keys = keySet([key('a1', SECRET_A)]);
    const long = token(SECRET_A, 'a1', { pad: 'x'.repeat(MAX_CACHED_TOKEN_LENGTH) });
    expect(long.length).to.be.greaterThan(MAX_CACHED_TOKEN_LENGTH);
    expect(verifyTenantToken(long, keys, POLICY, NOW_MS, cache).ok).to.equal(true);
    expect(cache.size).to.equal(0);
  });

  it('empties on clear()', () => {
    const cache = new VerifiedTokenCache();
    const keys = keySet([key('a1', SECRET_A)]);
    verifyTenantToken(token(SECRET_A, 'a1'), keys, POLICY, NOW_MS, cache);
    cache.clear();
    expect(cache.size).to.equal(0);
  });
});
