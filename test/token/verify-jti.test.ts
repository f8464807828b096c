/**
 * OINGATE_REQUIRE_JTI at the verifier (contract §10): with `requireJti` a
 * token without a string `jti` is refused as token_no_jti, on the full path
 * and on a verified-token cache hit alike; without it nothing changes.
 */
import { createHmac } from 'node:crypto';
import { expect } from 'chai';
import { VerifiedTokenCache } from '../../src/token/cache.ts';
import { keySet } from '../../src/token/key.ts';
import { buildHmacKey } from '../../src/token/keys.ts';
import { verifyTenantToken, type TokenFailure, type TokenPolicy, type TokenResult } from '../../src/token/verify.ts';

const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const NOW = NOW_MS / 1000;
const SECRET = 'jti-test-secret-0123456789abcdefghijkl';
const POLICY: TokenPolicy = { clockToleranceSeconds: 30, maxLifetimeSeconds: 3600 };
const REQUIRING: TokenPolicy = { ...POLICY, requireJti: true };
const keys = keySet([{ kid: 'hs', alg: 'HS256', key: buildHmacKey('hs', 'HS256', SECRET), enabled: true }]);

const b64url = (data: string): string => Buffer.from(data, 'utf8').toString('base64url');

/** An HS256 token from raw payload JSON text. */
function token(payload: string): string {
  const signingInput = `${b64url('{"alg":"HS256","kid":"hs"}')}.${b64url(payload)}`;
  return `${signingInput}.${createHmac('sha256', SECRET).update(signingInput).digest('base64url')}`;
}

const times = `"iat":${NOW - 60},"exp":${NOW + 600}`;
const withJti = token(`{"oin":"00000001000000000001","jti":"bGlzdGVkLWFuZC1yYW5kb20",${times}}`);
const withoutJti = token(`{"oin":"00000001000000000001",${times}}`);

function expectFailure(result: TokenResult, reason: TokenFailure): void {
  expect(result, JSON.stringify(result)).to.deep.equal({ ok: false, reason });
}

describe('verifyTenantToken: requireJti', () => {
  it('accepts a token with a string jti', () => {
    const result = verifyTenantToken(withJti, keys, REQUIRING, NOW_MS);
    expect(result.ok, JSON.stringify(result)).to.equal(true);
  });

  it('refuses a token without jti as token_no_jti', () => {
    expectFailure(verifyTenantToken(withoutJti, keys, REQUIRING, NOW_MS), 'token_no_jti');
  });

  for (const [what, value] of [
    ['a number', '12345'],
    ['null', 'null'],
    ['an array', '["a"]'],
    ['an object', '{"value":"a"}'],
    ['true', 'true'],
  ]) {
    it(`refuses a jti that is ${what}, not a string`, () => {
      const odd = token(`{"oin":"00000001000000000001","jti":${value},${times}}`);
      expectFailure(verifyTenantToken(odd, keys, REQUIRING, NOW_MS), 'token_no_jti');
    });
  }

  it('refuses a token whose only jti is inherited ("__proto__" cannot supply one)', () => {
    const proto = token(`{"oin":"00000001000000000001","__proto__":{"jti":"x"},${times}}`);
    const result = verifyTenantToken(proto, keys, REQUIRING, NOW_MS);
    expect(result.ok).to.equal(false);
  });

  it('accepts a token without jti when requireJti is unset or false', () => {
    expect(verifyTenantToken(withoutJti, keys, POLICY, NOW_MS).ok).to.equal(true);
    expect(verifyTenantToken(withoutJti, keys, { ...POLICY, requireJti: false }, NOW_MS).ok).to.equal(true);
  });

  it('still reports an earlier failure (expiry) before the missing jti', () => {
    const expired = token(`{"oin":"00000001000000000001","iat":${NOW - 900},"exp":${NOW - 600}}`);
    expectFailure(verifyTenantToken(expired, keys, REQUIRING, NOW_MS), 'token_expired');
  });

  it('refuses on a verified-token cache hit a token the cache holds from a policy that did not require jti', () => {
    const cache = new VerifiedTokenCache();
    expect(verifyTenantToken(withoutJti, keys, POLICY, NOW_MS, cache).ok).to.equal(true);
    expect(cache.size).to.equal(1);
    expectFailure(verifyTenantToken(withoutJti, keys, REQUIRING, NOW_MS, cache), 'token_no_jti');
    // The hit answered: the entry is still there, and a token with jti is still served from the cache.
    expect(cache.size).to.equal(1);
    expect(verifyTenantToken(withJti, keys, REQUIRING, NOW_MS, cache).ok).to.equal(true);
    expect(verifyTenantToken(withJti, keys, REQUIRING, NOW_MS, cache).ok).to.equal(true);
    expect(cache.size).to.equal(2);
  });

  it('never caches a token it refused for its missing jti', () => {
    const cache = new VerifiedTokenCache();
    expectFailure(verifyTenantToken(withoutJti, keys, REQUIRING, NOW_MS, cache), 'token_no_jti');
    expectFailure(verifyTenantToken(withoutJti, keys, REQUIRING, NOW_MS, cache), 'token_no_jti');
    expect(cache.size).to.equal(0);
  });
});
