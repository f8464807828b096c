/**
 * Revocation in the decision (contract §10): a token whose jti is revoked for
 * the request's tenant, or whose iat is not after the tenant's
 * tokensIssuedAfter (or that has none), is refused with 401 token_revoked,
 * after its signature verified and on a verified-token cache hit alike. The
 * refusal carries the jti for the log, never the token.
 */
import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { decide, type Decision, type DecisionPolicy, type RequestFacts } from '../src/decision.ts';
import { applyChanges, buildSnapshot, type Snapshot } from '../src/model/snapshot.ts';
import { decisionPolicy } from '../src/service.ts';
import { loadSettings } from '../src/settings.ts';
import { VerifiedTokenCache } from '../src/token/cache.ts';
import { isRevoked } from '../src/token/revocation.ts';

const OIN_A = '00000001000000000001';
const OIN_B = '00000001000000000002';
const SECRET_A = 'tenant-a-secret-0123456789abcdefghijkl';
const SECRET_B = 'tenant-b-secret-0123456789abcdefghijkl';
const NOW_MS = Date.UTC(2026, 11, 1, 12);
const NOW = NOW_MS / 1000;

const A = { oin: OIN_A, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'a1', alg: 'HS256', secret: SECRET_A }] };
const B = { oin: OIN_B, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'b1', alg: 'HS256', secret: SECRET_B }] };

function hs256(payload: Record<string, unknown>, secret: string, kid: string): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'HS256', kid })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function facts(oin: string, token: string): RequestFacts {
  return { peer: '127.0.0.1', forwardedFor: undefined, oinHeader: undefined, body: Buffer.from(JSON.stringify({ oin })), authorization: `Bearer ${token}` };
}

const tokenA = (claims: Record<string, unknown> = {}) => hs256({ oin: OIN_A, iat: NOW - 60, exp: NOW + 600, jti: 'leaked', ...claims }, SECRET_A, 'a1');
const tokenB = (claims: Record<string, unknown> = {}) => hs256({ oin: OIN_B, iat: NOW - 60, exp: NOW + 600, jti: 'leaked', ...claims }, SECRET_B, 'b1');

function outcome(decision: Decision): string {
  return decision.allowed ? 'allowed' : `${decision.status} ${decision.reason}`;
}

describe('decide(): revoked tokens', () => {
  let policy: DecisionPolicy;
  const oinPattern = /^[0-9]{20}$/;

  before(() => {
    policy = decisionPolicy(loadSettings({}));
  });

  it('refuses a revoked jti with 401 token_revoked and names the jti, not the token, for the log', async () => {
    const snapshot = await buildSnapshot({ tenants: [A, B], revokedTokens: [{ jti: 'leaked', oin: OIN_A }] }, { oinPattern });
    const token = tokenA();
    const decision = decide(facts(OIN_A, token), snapshot, policy, NOW_MS);
    expect(outcome(decision)).to.equal('401 token_revoked');
    expect(decision.allowed === false && decision.jti).to.equal('leaked');
    expect(JSON.stringify(decision)).to.not.include(token.split('.')[2]);
  });

  it('allows the same jti under another tenant', async () => {
    const snapshot = await buildSnapshot({ tenants: [A, B], revokedTokens: [{ jti: 'leaked', oin: OIN_A }] }, { oinPattern });
    expect(outcome(decide(facts(OIN_B, tokenB()), snapshot, policy, NOW_MS))).to.equal('allowed');
    expect(outcome(decide(facts(OIN_A, tokenA({ jti: 'other' })), snapshot, policy, NOW_MS))).to.equal('allowed');
  });

  it('never lets a cached token through once it is revoked', async () => {
    const cache = new VerifiedTokenCache();
    const before = await buildSnapshot({ tenants: [A, B] }, { oinPattern });
    const token = tokenA();
    for (let i = 0; i < 5; i++) expect(outcome(decide(facts(OIN_A, token), before, policy, NOW_MS, undefined, cache))).to.equal('allowed');
    expect(cache.size).to.equal(1);
    const after = await applyChanges(before, { upserts: [A], removals: [], revokedTokens: [{ jti: 'leaked', oin: OIN_A }] }, { oinPattern });
    // Same keys: the cache entry still counts, and the revocation still refuses it.
    expect(after.tenants.get(OIN_A)!.keys).to.equal(before.tenants.get(OIN_A)!.keys);
    expect(outcome(decide(facts(OIN_A, token), after, policy, NOW_MS, undefined, cache))).to.equal('401 token_revoked');
    expect(cache.get(token, after.tenants.get(OIN_A)!.keys)).to.not.equal(undefined);
  });

  describe('tokensIssuedAfter', () => {
    let snapshot: Snapshot;
    before(async () => {
      const cut = new Date(NOW_MS).toISOString();
      snapshot = await buildSnapshot({ tenants: [{ ...A, tokensIssuedAfter: cut }, B] }, { oinPattern });
    });

    it('refuses a token issued before it, one issued at that very second, and one without iat', () => {
      expect(outcome(decide(facts(OIN_A, tokenA()), snapshot, policy, NOW_MS + 1000))).to.equal('401 token_revoked');
      expect(outcome(decide(facts(OIN_A, tokenA({ iat: NOW })), snapshot, policy, NOW_MS + 1000))).to.equal('401 token_revoked');
      const noIat = hs256({ oin: OIN_A, exp: NOW + 600 }, SECRET_A, 'a1');
      expect(outcome(decide(facts(OIN_A, noIat), snapshot, policy, NOW_MS + 1000))).to.equal('401 token_revoked');
    });

    it('allows a token issued after it, and leaves other tenants alone', () => {
      expect(outcome(decide(facts(OIN_A, tokenA({ iat: NOW + 1 })), snapshot, policy, NOW_MS + 2000))).to.equal('allowed');
      expect(outcome(decide(facts(OIN_B, tokenB()), snapshot, policy, NOW_MS))).to.equal('allowed');
    });
  });

  describe('isRevoked', () => {
    it('reads only own jti and iat properties of the claims', async () => {
      const snapshot = await buildSnapshot({ tenants: [{ ...A, tokensIssuedAfter: new Date(NOW_MS).toISOString() }], revokedTokens: [{ jti: 'x', oin: OIN_A }] }, { oinPattern });
      const tenant = snapshot.tenants.get(OIN_A)!;
      const inherited = Object.create({ iat: NOW + 10 }) as Record<string, unknown>;
      expect(isRevoked(tenant, inherited)).to.equal(true);
      expect(isRevoked(tenant, { iat: NOW + 10 })).to.equal(false);
      expect(isRevoked(tenant, { iat: NOW + 10, jti: 'x' })).to.equal(true);
      expect(isRevoked(tenant, { iat: String(NOW + 10) })).to.equal(true);
    });

    it('matches a jti as the string it must be, never a number or array that reads like one', async () => {
      const snapshot = await buildSnapshot({ tenants: [A], revokedTokens: [{ jti: '42', oin: OIN_A }] }, { oinPattern });
      const tenant = snapshot.tenants.get(OIN_A)!;
      expect(isRevoked(tenant, { iat: NOW, jti: '42' })).to.equal(true);
      for (const jti of [42, ['42'], { toString: () => '42' }, null]) expect(isRevoked(tenant, { iat: NOW, jti }), JSON.stringify(jti)).to.equal(false);
    });
  });

  it('names a long revoked jti for the log cut to 128 characters', async () => {
    const jti = 'j'.repeat(1024);
    const snapshot = await buildSnapshot({ tenants: [A], revokedTokens: [{ jti, oin: OIN_A }] }, { oinPattern });
    const decision = decide(facts(OIN_A, tokenA({ jti })), snapshot, policy, NOW_MS);
    expect(outcome(decision)).to.equal('401 token_revoked');
    expect(decision.allowed === false && decision.jti).to.equal(jti.slice(0, 128));
  });
});
