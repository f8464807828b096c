import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { decide, decideBeforeBody, type Decision, type DecisionPolicy, type RequestFacts } from '../src/decision.ts';
import { parsePeerAddress } from '../src/ip/address.ts';
import { buildSnapshot, type Snapshot } from '../src/model/snapshot.ts';
import { decisionPolicy } from '../src/service.ts';
import { loadSettings } from '../src/settings.ts';

/**
 * Unit tests of the pure decision function: the order of the checks
 * (contract §1), the status each refusal maps to, and the precise reason
 * that goes to the log. No sockets, no clock: `nowMs` is fixed.
 */

const OIN_A = '00000001000000000001';
const OIN_B = '00000001000000000002';
const OIN_DISABLED = '00000001000000000003';
const OIN_FAR = '00000001000000000004';
const OIN_UNKNOWN = '00000001000000000099';
const SECRET_A = 'tenant-a-secret-0123456789abcdefghijkl';
const SECRET_B = 'tenant-b-secret-0123456789abcdefghijkl';
const SECRET_DISABLED = 'tenant-c-secret-0123456789abcdefghijkl';
const SECRET_FAR = 'tenant-d-secret-0123456789abcdefghijkl';
const SECRET_OLD = 'tenant-a-retired-secret-0123456789abcdef';

/** A fixed clock: 2026-01-01T00:00:00Z. */
const NOW_MS = Date.UTC(2026, 0, 1);
const NOW = NOW_MS / 1000;

const TENANTS = [
  {
    oin: OIN_A,
    name: 'A',
    cidrs: ['127.0.0.0/8', '::1/128', '203.0.113.0/24'],
    keys: [
      { kid: 'a1', alg: 'HS256', secret: SECRET_A },
      { kid: 'a-old', alg: 'HS256', secret: SECRET_OLD, expiresAt: '2025-06-01T00:00:00Z' },
    ],
  },
  { oin: OIN_B, name: 'B', cidrs: ['127.0.0.0/8'], keys: [{ kid: 'b1', alg: 'HS256', secret: SECRET_B }] },
  {
    oin: OIN_DISABLED,
    name: 'C',
    enabled: false,
    cidrs: ['127.0.0.0/8'],
    keys: [{ kid: 'c1', alg: 'HS256', secret: SECRET_DISABLED }],
  },
  { oin: OIN_FAR, name: 'D', cidrs: ['198.51.100.0/24'], keys: [{ kid: 'd1', alg: 'HS256', secret: SECRET_FAR }] },
];

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** A hand-made HS256 JWS: the header and payload are used exactly as given. */
function hs256(payload: Record<string, unknown> | string, secret: string, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT', kid: 'a1' }): string {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const input = `${b64url(JSON.stringify(header))}.${b64url(body)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A valid token of tenant A at NOW_MS, with claims overridden as given. */
function tokenA(claims: Record<string, unknown> = {}): string {
  return hs256({ oin: OIN_A, iat: NOW, exp: NOW + 600, ...claims }, SECRET_A);
}

function tokenOf(oin: string, secret: string, kid: string, claims: Record<string, unknown> = {}): string {
  return hs256({ oin, iat: NOW, exp: NOW + 600, ...claims }, secret, { alg: 'HS256', typ: 'JWT', kid });
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function facts(overrides: Partial<RequestFacts> = {}): RequestFacts {
  return {
    peer: '127.0.0.1',
    forwardedFor: undefined,
    oinHeader: undefined,
    body: json({ oin: OIN_A }),
    authorization: `Bearer ${tokenA()}`,
    ...overrides,
  };
}

function refusal(decision: Decision): { status: number; reason: string } {
  if (decision.allowed) throw new Error(`expected a refusal, got allowed for ${decision.oin}`);
  return { status: decision.status, reason: decision.reason };
}

function allowedOin(decision: Decision): string {
  if (!decision.allowed) throw new Error(`expected allowed, got ${decision.status} ${decision.reason}`);
  return decision.oin;
}

describe('decide()', () => {
  let snapshot: Snapshot;
  let policy: DecisionPolicy;
  let trustingPolicy: DecisionPolicy;

  before(async () => {
    const settings = loadSettings({});
    policy = decisionPolicy(settings);
    trustingPolicy = decisionPolicy(loadSettings({ OINGATE_TRUSTED_PROXIES: '10.0.0.0/8' }));
    snapshot = await buildSnapshot({ tenants: TENANTS }, { oinPattern: settings.oinPattern });
  });

  const run = (f: RequestFacts, nowMs = NOW_MS, p: DecisionPolicy = policy): Decision => decide(f, snapshot, p, nowMs);

  describe('a well-formed request', () => {
    it('is allowed, naming the OIN, client IP, kid and tenant', () => {
      const decision = run(facts());
      if (!decision.allowed) throw new Error(`refused: ${decision.reason}`);
      expect(decision.oin).to.equal(OIN_A);
      expect(decision.clientIp).to.equal('127.0.0.1');
      expect(decision.kid).to.equal('a1');
      expect(decision.tenant.oin).to.equal(OIN_A);
    });

    it('allows a token without kid by trying the tenant\'s usable keys', () => {
      const token = hs256({ oin: OIN_A, iat: NOW, exp: NOW + 600 }, SECRET_A, { alg: 'HS256', typ: 'JWT' });
      const decision = run(facts({ authorization: `Bearer ${token}` }));
      if (!decision.allowed) throw new Error(`refused: ${decision.reason}`);
      expect(decision.kid).to.equal('a1');
    });

    it('treats an IPv4-mapped IPv6 peer as its IPv4 address', () => {
      const decision = run(facts({ peer: '::ffff:127.0.0.1' }));
      if (!decision.allowed) throw new Error(`refused: ${decision.reason}`);
      expect(decision.clientIp).to.equal('127.0.0.1');
    });
  });

  describe('order of the checks', () => {
    it('answers 503 not_ready before anything else when no whitelist is loaded', () => {
      const hostile = facts({ peer: 'garbage', body: Buffer.from('{'), authorization: 'Basic x' });
      expect(refusal(decide(hostile, undefined, policy, NOW_MS))).to.deep.equal({ status: 503, reason: 'not_ready' });
      expect(refusal(decide(facts(), undefined, policy, NOW_MS))).to.deep.equal({ status: 503, reason: 'not_ready' });
    });

    it('refuses an unparseable peer with 403 peer_unparseable', () => {
      expect(refusal(run(facts({ peer: undefined })))).to.deep.equal({ status: 403, reason: 'peer_unparseable' });
      expect(refusal(run(facts({ peer: 'not-an-ip' })))).to.deep.equal({ status: 403, reason: 'peer_unparseable' });
    });

    it('lets a malformed X-Forwarded-For from a trusted peer beat every later check (403)', () => {
      const hostile = facts({
        peer: '10.1.2.3',
        forwardedFor: '010.0.0.1',
        body: Buffer.from('{not json'),
        oinHeader: ['x', 'y'],
        authorization: 'Bearer garbage',
      });
      const decision = run(hostile, NOW_MS, trustingPolicy);
      expect(refusal(decision)).to.deep.equal({ status: 403, reason: 'forwarded_for_malformed' });
      expect(decision.clientIp).to.equal(undefined);
    });

    it('ignores a malformed X-Forwarded-For from an untrusted peer', () => {
      expect(allowedOin(run(facts({ forwardedFor: 'unknown' }), NOW_MS, trustingPolicy))).to.equal(OIN_A);
      expect(allowedOin(run(facts({ forwardedFor: '010.0.0.1' })))).to.equal(OIN_A);
    });

    it('judges a trusted peer\'s request by the nearest untrusted X-Forwarded-For entry', () => {
      const decision = run(facts({ peer: '10.0.0.1', forwardedFor: '203.0.113.7, 10.9.9.9' }), NOW_MS, trustingPolicy);
      if (!decision.allowed) throw new Error(`refused: ${decision.reason}`);
      expect(decision.clientIp).to.equal('203.0.113.7');
      // Tenant D allows only 198.51.100.0/24: the peer 10.0.0.1 would not help either.
      const far = run(
        facts({ peer: '10.0.0.1', forwardedFor: '203.0.113.7', body: json({ oin: OIN_FAR }), authorization: `Bearer ${tokenOf(OIN_FAR, SECRET_FAR, 'd1')}` }),
        NOW_MS,
        trustingPolicy,
      );
      expect(refusal(far)).to.deep.equal({ status: 403, reason: 'ip_not_whitelisted' });
      expect(far.clientIp).to.equal('203.0.113.7');
    });

    it('answers 400 for a body error even when the token is bad too', () => {
      const badToken = { authorization: 'Bearer not.a.token' };
      expect(refusal(run(facts({ ...badToken, body: Buffer.from('{"oin":') })))).to.deep.equal({ status: 400, reason: 'body_invalid_json' });
      expect(refusal(run(facts({ ...badToken, body: json({ oin: 1234 }) })))).to.deep.equal({ status: 400, reason: 'oin_not_string' });
      expect(refusal(run(facts({ ...badToken, authorization: undefined, body: json({}) })))).to.deep.equal({ status: 400, reason: 'oin_missing' });
    });

    it('answers 400 for an OIN error even when the tenant is unknown and the IP foreign to tenant A', () => {
      // 198.51.100.1 is tenant D's, so some tenant covers it and the body is read.
      const decision = run(facts({ peer: '198.51.100.1', body: json({ oin: 'nope' }), authorization: undefined }));
      expect(refusal(decision)).to.deep.equal({ status: 400, reason: 'oin_pattern' });
      expect(decision.clientIp).to.equal('198.51.100.1');
    });

    it('refuses a client IP in no tenant\'s ranges with 403 ip_no_tenant before looking at the body', () => {
      for (const body of [json({ oin: OIN_A }), Buffer.from('{not json'), undefined]) {
        const decision = run(facts({ peer: '192.0.2.1', body }));
        expect(refusal(decision)).to.deep.equal({ status: 403, reason: 'ip_no_tenant' });
        expect(decision.clientIp).to.equal('192.0.2.1');
      }
      // Decided without any body at all: the HTTP layer asks before reading one.
      const early = decideBeforeBody({ peer: '192.0.2.1', forwardedFor: undefined }, snapshot, policy);
      expect(early).to.include({ allowed: false, status: 403, reason: 'ip_no_tenant' });
      expect(decideBeforeBody({ peer: '127.0.0.1', forwardedFor: undefined }, snapshot, policy)).to.include({ allowed: 'pending', clientIp: '127.0.0.1' });
    });

    it('does not count a disabled tenant\'s ranges as covering a client', async () => {
      const snap = await buildSnapshot(
        { tenants: [{ oin: OIN_A, enabled: false, cidrs: ['192.0.2.0/24'], keys: [{ kid: 'a1', alg: 'HS256', secret: SECRET_A }] }] },
        { oinPattern: loadSettings({}).oinPattern },
      );
      expect(decideBeforeBody({ peer: '192.0.2.1', forwardedFor: undefined }, snap, policy)).to.include({ reason: 'ip_no_tenant' });
    });

    it('judges coverage by the forwarded client, not by the trusted proxy', () => {
      const decision = run(facts({ peer: '10.0.0.1', forwardedFor: '192.0.2.9' }), NOW_MS, trustingPolicy);
      expect(refusal(decision)).to.deep.equal({ status: 403, reason: 'ip_no_tenant' });
      expect(decision.clientIp).to.equal('192.0.2.9');
    });

    it('uses a peer address parsed once per connection when the HTTP layer passes one', () => {
      const parsed = parsePeerAddress('127.0.0.1');
      expect(allowedOin(run(facts({ peer: 'ignored', peerAddress: parsed ?? null })))).to.equal(OIN_A);
      expect(refusal(run(facts({ peer: '127.0.0.1', peerAddress: null })))).to.deep.equal({ status: 403, reason: 'peer_unparseable' });
    });

    it('refuses a repeated Authorization or Content-Type header with 400, after the IP checks', () => {
      expect(refusal(run(facts({ repeatedHeader: 'authorization' })))).to.deep.equal({ status: 400, reason: 'authorization_repeated' });
      expect(refusal(run(facts({ repeatedHeader: 'content-type' })))).to.deep.equal({ status: 400, reason: 'content_type_repeated' });
      expect(refusal(run(facts({ peer: '192.0.2.1', repeatedHeader: 'authorization' })))).to.deep.equal({ status: 403, reason: 'ip_no_tenant' });
    });

    it('answers 403 tenant_unknown, not 401, for an unknown tenant with a bad or missing token', () => {
      const bad = run(facts({ body: json({ oin: OIN_UNKNOWN }), authorization: 'Bearer garbage' }));
      expect(refusal(bad)).to.deep.equal({ status: 403, reason: 'tenant_unknown' });
      expect(bad.oin).to.equal(OIN_UNKNOWN);
      const none = run(facts({ body: json({ oin: OIN_UNKNOWN }), authorization: undefined }));
      expect(refusal(none)).to.deep.equal({ status: 403, reason: 'tenant_unknown' });
    });

    it('answers 403 tenant_disabled for a disabled tenant, even with its own valid token', () => {
      const decision = run(facts({ body: json({ oin: OIN_DISABLED }), authorization: `Bearer ${tokenOf(OIN_DISABLED, SECRET_DISABLED, 'c1')}` }));
      expect(refusal(decision)).to.deep.equal({ status: 403, reason: 'tenant_disabled' });
      expect(refusal(run(facts({ body: json({ oin: OIN_DISABLED }), authorization: 'Bearer x' })))).to.deep.equal({
        status: 403,
        reason: 'tenant_disabled',
      });
    });

    it('answers 403 ip_not_whitelisted with a bad token: an outsider never learns about tokens', () => {
      for (const authorization of [undefined, 'Bearer garbage', 'Basic dXNlcjpwYXNz', `Bearer ${tokenOf(OIN_FAR, SECRET_FAR, 'd1')}`]) {
        const decision = run(facts({ body: json({ oin: OIN_FAR }), authorization }));
        expect(refusal(decision), String(authorization)).to.deep.equal({ status: 403, reason: 'ip_not_whitelisted' });
        expect(decision.clientIp).to.equal('127.0.0.1');
        expect(decision.oin).to.equal(OIN_FAR);
      }
    });

    it('checks the token only after the tenant and the IP pass', () => {
      expect(refusal(run(facts({ authorization: undefined })))).to.deep.equal({ status: 401, reason: 'token_missing' });
    });

    it('checks the tenant claim only after the token verifies', () => {
      // Tenant B's token (valid for B) whose oin claim says A: the signature fails first for A.
      const forged = tokenOf(OIN_A, SECRET_B, 'b1');
      expect(refusal(run(facts({ authorization: `Bearer ${forged}` })))).to.deep.equal({ status: 401, reason: 'token_unknown_kid' });
    });

    it('answers 503 keys_unavailable when the tenant\'s keys cannot be known, after the IP check', () => {
      const decision = decide(facts(), snapshot, policy, NOW_MS, () => undefined);
      expect(refusal(decision)).to.deep.equal({ status: 503, reason: 'keys_unavailable' });
      const foreign = decide(facts({ body: json({ oin: OIN_FAR }) }), snapshot, policy, NOW_MS, () => undefined);
      expect(refusal(foreign)).to.deep.equal({ status: 403, reason: 'ip_not_whitelisted' });
    });
  });

  describe('tenant keys', () => {
    it("refuses tenant A's token (kid a1) presented for tenant B as token_unknown_kid, naming the tenant", () => {
      const decision = run(facts({ body: json({ oin: OIN_B }), authorization: `Bearer ${tokenOf(OIN_B, SECRET_A, 'a1')}` }));
      expect(refusal(decision)).to.deep.equal({ status: 401, reason: 'token_unknown_kid' });
      if (decision.allowed) throw new Error('unreachable');
      expect(decision.tenant?.oin).to.equal(OIN_B);
    });

    it("refuses a token signed with A's secret but naming B's kid as token_bad_signature", () => {
      const decision = run(facts({ body: json({ oin: OIN_B }), authorization: `Bearer ${tokenOf(OIN_B, SECRET_A, 'b1')}` }));
      expect(refusal(decision)).to.deep.equal({ status: 401, reason: 'token_bad_signature' });
    });

    it("refuses a kid-less token signed with A's secret for tenant B as token_bad_signature", () => {
      const token = hs256({ oin: OIN_B, iat: NOW, exp: NOW + 600 }, SECRET_A, { alg: 'HS256' });
      expect(refusal(run(facts({ body: json({ oin: OIN_B }), authorization: `Bearer ${token}` })))).to.deep.equal({
        status: 401,
        reason: 'token_bad_signature',
      });
    });

    it('accepts B\'s own token for B', () => {
      expect(allowedOin(run(facts({ body: json({ oin: OIN_B }), authorization: `Bearer ${tokenOf(OIN_B, SECRET_B, 'b1')}` })))).to.equal(OIN_B);
    });

    it('refuses a key past its expiresAt as token_key_inactive', () => {
      const token = tokenOf(OIN_A, SECRET_OLD, 'a-old');
      expect(refusal(run(facts({ authorization: `Bearer ${token}` })))).to.deep.equal({ status: 401, reason: 'token_key_inactive' });
      // The same key was fine before its expiresAt.
      const earlier = Date.UTC(2025, 0, 1);
      const t = earlier / 1000;
      const old = hs256({ oin: OIN_A, iat: t, exp: t + 600 }, SECRET_OLD, { alg: 'HS256', kid: 'a-old' });
      expect(allowedOin(run(facts({ authorization: `Bearer ${old}` }), earlier))).to.equal(OIN_A);
    });

    it('refuses a token whose alg differs from the key\'s as token_algorithm', () => {
      const token = hs256({ oin: OIN_A, iat: NOW, exp: NOW + 600 }, SECRET_A, { alg: 'HS512', kid: 'a1' });
      expect(refusal(run(facts({ authorization: `Bearer ${token}` })))).to.deep.equal({ status: 401, reason: 'token_algorithm' });
    });

    it('refuses alg none', () => {
      const token = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify({ oin: OIN_A, iat: NOW, exp: NOW + 600 }))}.`;
      const decision = run(facts({ authorization: `Bearer ${token}` }));
      expect(refusal(decision).status).to.equal(401);
      expect(refusal(decision).reason).to.equal('token_malformed');
      const withSig = `${b64url(JSON.stringify({ alg: 'none' }))}.${b64url(JSON.stringify({ oin: OIN_A, exp: NOW + 600 }))}.AAAA`;
      const signed = refusal(run(facts({ authorization: `Bearer ${withSig}` })));
      expect(signed.status).to.equal(401);
      expect(signed.reason).to.be.oneOf(['token_unknown_kid', 'token_algorithm']);
    });
  });

  describe('token reasons', () => {
    const cases: Array<[string, () => string | undefined, string]> = [
      ['no Authorization header', () => undefined, 'token_missing'],
      ['Basic credentials', () => 'Basic dXNlcjpwYXNz', 'token_malformed'],
      ['Bearer without a token', () => 'Bearer ', 'token_malformed'],
      ['two bearer tokens', () => `Bearer ${tokenA()} ${tokenA()}`, 'token_malformed'],
      ['garbage token', () => 'Bearer garbage', 'token_malformed'],
      ['tampered payload', () => {
        const [h, , s] = tokenA().split('.');
        return `Bearer ${h}.${b64url(JSON.stringify({ oin: OIN_A, iat: NOW, exp: NOW + 6000 }))}.${s}`;
      }, 'token_bad_signature'],
      ['unknown kid', () => `Bearer ${hs256({ oin: OIN_A, exp: NOW + 60 }, SECRET_A, { alg: 'HS256', kid: '../../dev/null' })}`, 'token_unknown_kid'],
      ['no exp', () => `Bearer ${hs256({ oin: OIN_A, iat: NOW }, SECRET_A)}`, 'token_no_exp'],
      ['exp as a string', () => `Bearer ${hs256({ oin: OIN_A, iat: NOW, exp: String(NOW + 60) }, SECRET_A)}`, 'token_no_exp'],
      ['exp 1e400 (Infinity)', () => `Bearer ${hs256(`{"oin":"${OIN_A}","iat":${NOW},"exp":1e400}`, SECRET_A)}`, 'token_no_exp'],
      ['nbf in the future', () => `Bearer ${tokenA({ nbf: NOW + 31 })}`, 'token_not_yet_valid'],
      ['iat in the future', () => `Bearer ${tokenA({ iat: NOW + 31, exp: NOW + 600 })}`, 'token_iat_future'],
      ['lifetime over the maximum', () => `Bearer ${tokenA({ iat: NOW, exp: NOW + 86_401 })}`, 'token_lifetime'],
      ['lifetime over the maximum without iat', () => `Bearer ${hs256({ oin: OIN_A, exp: NOW + 86_401 }, SECRET_A)}`, 'token_lifetime'],
    ];
    for (const [title, authorization, reason] of cases) {
      it(`refuses ${title} with 401 ${reason}`, () => {
        expect(refusal(run(facts({ authorization: authorization() })))).to.deep.equal({ status: 401, reason });
      });
    }

    it('honours nbf and iat within the clock tolerance', () => {
      expect(allowedOin(run(facts({ authorization: `Bearer ${tokenA({ nbf: NOW + 29 })}` })))).to.equal(OIN_A);
      expect(allowedOin(run(facts({ authorization: `Bearer ${tokenA({ iat: NOW + 29 })}` })))).to.equal(OIN_A);
    });

    it('accepts a lifetime of exactly the maximum', () => {
      expect(allowedOin(run(facts({ authorization: `Bearer ${tokenA({ iat: NOW, exp: NOW + 86_400 })}` })))).to.equal(OIN_A);
    });

    it('expires a token deterministically at exp plus the 30 s tolerance', () => {
      const token = `Bearer ${tokenA({ iat: NOW, exp: NOW + 10 })}`;
      expect(allowedOin(run(facts({ authorization: token }), NOW_MS + 39_999))).to.equal(OIN_A);
      expect(refusal(run(facts({ authorization: token }), NOW_MS + 40_000))).to.deep.equal({ status: 401, reason: 'token_expired' });
      expect(refusal(run(facts({ authorization: token }), NOW_MS + 3_600_000))).to.deep.equal({ status: 401, reason: 'token_expired' });
    });

    it('uses OINGATE_CLOCK_TOLERANCE for expiry', () => {
      const strict = decisionPolicy(loadSettings({ OINGATE_CLOCK_TOLERANCE: '0' }));
      const token = `Bearer ${tokenA({ iat: NOW, exp: NOW + 10 })}`;
      expect(allowedOin(run(facts({ authorization: token }), NOW_MS + 9_999, strict))).to.equal(OIN_A);
      expect(refusal(run(facts({ authorization: token }), NOW_MS + 10_000, strict))).to.deep.equal({ status: 401, reason: 'token_expired' });
    });

    it('checks OINGATE_ISSUER and OINGATE_AUDIENCE when set', () => {
      const strict = decisionPolicy(loadSettings({ OINGATE_ISSUER: 'https://idp.example', OINGATE_AUDIENCE: 'oingate' }));
      const good = tokenA({ iss: 'https://idp.example', aud: ['other', 'oingate'] });
      expect(allowedOin(run(facts({ authorization: `Bearer ${good}` }), NOW_MS, strict))).to.equal(OIN_A);
      const wrongIss = tokenA({ iss: 'https://evil.example', aud: 'oingate' });
      expect(refusal(run(facts({ authorization: `Bearer ${wrongIss}` }), NOW_MS, strict))).to.deep.equal({ status: 401, reason: 'token_issuer' });
      const noIss = tokenA({ aud: 'oingate' });
      expect(refusal(run(facts({ authorization: `Bearer ${noIss}` }), NOW_MS, strict))).to.deep.equal({ status: 401, reason: 'token_issuer' });
      const wrongAud = tokenA({ iss: 'https://idp.example', aud: 'someone-else' });
      expect(refusal(run(facts({ authorization: `Bearer ${wrongAud}` }), NOW_MS, strict))).to.deep.equal({ status: 401, reason: 'token_audience' });
      // Without those settings the same claims are not looked at.
      expect(allowedOin(run(facts({ authorization: `Bearer ${wrongIss}` })))).to.equal(OIN_A);
    });
  });

  describe('tenant claim', () => {
    const cases: Array<[string, unknown]> = [
      ['a number', Number(OIN_A)],
      ['a number written with all digits', 1000000000001],
      ['an array holding the OIN', [OIN_A]],
      ['an object', { oin: OIN_A }],
      ['with leading whitespace', ` ${OIN_A}`],
      ['with a trailing newline', `${OIN_A}\n`],
      ['another tenant\'s OIN', OIN_B],
      ['null', null],
    ];
    for (const [title, claim] of cases) {
      it(`refuses a claim that is ${title} with 403 claim_mismatch`, () => {
        const decision = run(facts({ authorization: `Bearer ${tokenA({ oin: claim })}` }));
        expect(refusal(decision)).to.deep.equal({ status: 403, reason: 'claim_mismatch' });
      });
    }

    it('refuses a token without the claim with 403 claim_mismatch', () => {
      const token = hs256({ iat: NOW, exp: NOW + 600 }, SECRET_A);
      expect(refusal(run(facts({ authorization: `Bearer ${token}` })))).to.deep.equal({ status: 403, reason: 'claim_mismatch' });
    });

    it('refuses a claim that differs only in case', async () => {
      const settings = loadSettings({ OINGATE_OIN_PATTERN: '^[0-9A-Za-z]{20}$' });
      const lettered = 'ABCDEFGHIJ0123456789';
      const snap = await buildSnapshot(
        { tenants: [{ oin: lettered, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'l1', alg: 'HS256', secret: SECRET_A }] }] },
        { oinPattern: settings.oinPattern },
      );
      const p = decisionPolicy(settings);
      const token = (oin: string): string => `Bearer ${tokenOf(oin, SECRET_A, 'l1')}`;
      const ok = decide(facts({ body: json({ oin: lettered }), authorization: token(lettered) }), snap, p, NOW_MS);
      expect(allowedOin(ok)).to.equal(lettered);
      const lower = decide(facts({ body: json({ oin: lettered }), authorization: token(lettered.toLowerCase()) }), snap, p, NOW_MS);
      expect(refusal(lower)).to.deep.equal({ status: 403, reason: 'claim_mismatch' });
      // And the request's own OIN in another case is simply another (unknown) tenant.
      const other = decide(facts({ body: json({ oin: lettered.toLowerCase() }), authorization: token(lettered.toLowerCase()) }), snap, p, NOW_MS);
      expect(refusal(other)).to.deep.equal({ status: 403, reason: 'tenant_unknown' });
    });

    it('reads the claim named by OINGATE_TENANT_CLAIM', () => {
      const p = decisionPolicy(loadSettings({ OINGATE_TENANT_CLAIM: 'org' }));
      expect(allowedOin(run(facts({ authorization: `Bearer ${tokenA({ oin: undefined, org: OIN_A })}` }), NOW_MS, p))).to.equal(OIN_A);
      expect(refusal(run(facts(), NOW_MS, p))).to.deep.equal({ status: 403, reason: 'claim_mismatch' });
    });
  });

  describe('reading the OIN', () => {
    it('allows header and body that agree', () => {
      expect(allowedOin(run(facts({ oinHeader: [OIN_A] })))).to.equal(OIN_A);
    });

    it('refuses header and body that disagree with 400 oin_conflict', () => {
      expect(refusal(run(facts({ oinHeader: [OIN_B] })))).to.deep.equal({ status: 400, reason: 'oin_conflict' });
      // Even when the header names a tenant the token fits.
      const decision = run(facts({ body: json({ oin: OIN_B }), oinHeader: [OIN_A] }));
      expect(refusal(decision)).to.deep.equal({ status: 400, reason: 'oin_conflict' });
    });

    it('allows the OIN in the header only, with no body', () => {
      expect(allowedOin(run(facts({ body: undefined, oinHeader: [OIN_A] })))).to.equal(OIN_A);
      expect(allowedOin(run(facts({ body: Buffer.alloc(0), oinHeader: [OIN_A] })))).to.equal(OIN_A);
    });

    it('allows the OIN in the header with a JSON body that has no OIN field', () => {
      expect(allowedOin(run(facts({ body: json({ other: 1 }), oinHeader: [OIN_A] })))).to.equal(OIN_A);
    });

    it('refuses two header values with 400 oin_header_repeated, even when they agree', () => {
      expect(refusal(run(facts({ oinHeader: [OIN_A, OIN_A] })))).to.deep.equal({ status: 400, reason: 'oin_header_repeated' });
      expect(refusal(run(facts({ body: undefined, oinHeader: [OIN_A, OIN_B] })))).to.deep.equal({ status: 400, reason: 'oin_header_repeated' });
    });

    it('refuses a numeric OIN in the body with 400 oin_not_string', () => {
      // A 20-digit number (no leading zero, or it would not even be JSON).
      expect(refusal(run(facts({ body: Buffer.from('{"oin":10000001000000000001}') })))).to.deep.equal({ status: 400, reason: 'oin_not_string' });
      expect(refusal(run(facts({ body: Buffer.from('{"oin":1234}') })))).to.deep.equal({ status: 400, reason: 'oin_not_string' });
      expect(refusal(run(facts({ body: Buffer.from(`{"oin":1234}`), oinHeader: ['1234'] })))).to.deep.equal({
        status: 400,
        reason: 'oin_not_string',
      });
    });

    it('refuses other non-string OINs with 400 oin_not_string', () => {
      for (const oin of [[OIN_A], { oin: OIN_A }, null, true]) {
        expect(refusal(run(facts({ body: json({ oin }) }))), JSON.stringify(oin)).to.deep.equal({ status: 400, reason: 'oin_not_string' });
      }
    });

    it('refuses an OIN not matching the pattern with 400 oin_pattern', () => {
      for (const oin of ['1234', `${OIN_A}0`, ` ${OIN_A}`, `${OIN_A}\n`, '', '0000000100000000000A', '０0000001000000000001']) {
        expect(refusal(run(facts({ body: json({ oin }) }))), JSON.stringify(oin)).to.deep.equal({ status: 400, reason: 'oin_pattern' });
      }
      expect(refusal(run(facts({ body: undefined, oinHeader: ['1234'] })))).to.deep.equal({ status: 400, reason: 'oin_pattern' });
    });

    it('refuses a request without any OIN with 400 oin_missing', () => {
      expect(refusal(run(facts({ body: undefined })))).to.deep.equal({ status: 400, reason: 'oin_missing' });
      expect(refusal(run(facts({ body: json({ tenant: OIN_A }) })))).to.deep.equal({ status: 400, reason: 'oin_missing' });
      expect(refusal(run(facts({ body: json([{ oin: OIN_A }]) })))).to.deep.equal({ status: 400, reason: 'oin_missing' });
    });

    it('refuses a body whose oin key appears twice, also when escaped, with 400 body_duplicate_key', () => {
      expect(refusal(run(facts({ body: Buffer.from(`{"oin":"${OIN_A}","oin":"${OIN_B}"}`) })))).to.deep.equal({
        status: 400,
        reason: 'body_duplicate_key',
      });
      expect(refusal(run(facts({ body: Buffer.from(`{"oin":"${OIN_A}","o\\u0069n":"${OIN_A}"}`) })))).to.deep.equal({
        status: 400,
        reason: 'body_duplicate_key',
      });
    });

    it('refuses invalid JSON and invalid UTF-8 with 400 body_invalid_json', () => {
      for (const body of [
        Buffer.from('{"oin":'),
        Buffer.from(`{"oin":"${OIN_A}",}`),
        Buffer.from(`\ufeff{"oin":"${OIN_A}"}`),
        Buffer.concat([Buffer.from(`{"oin":"${OIN_A}","x":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
        Buffer.concat([Buffer.from(`{"oin":"${OIN_A}","x":"`), Buffer.from([0xff]), Buffer.from('"}')]),
      ]) {
        expect(refusal(run(facts({ body }))), body.toString('hex')).to.deep.equal({ status: 400, reason: 'body_invalid_json' });
      }
    });

    it('allows 64 levels of nesting and refuses 65 with 400 body_too_deep', () => {
      const nested = (depth: number): Buffer => Buffer.from(`{"oin":"${OIN_A}","x":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`);
      expect(allowedOin(run(facts({ body: nested(64) })))).to.equal(OIN_A);
      expect(refusal(run(facts({ body: nested(65) })))).to.deep.equal({ status: 400, reason: 'body_too_deep' });
    });

    it('reads the OIN at a custom OINGATE_OIN_FIELD dotted path', () => {
      const p = decisionPolicy(loadSettings({ OINGATE_OIN_FIELD: 'meta.oin' }));
      expect(allowedOin(run(facts({ body: json({ meta: { oin: OIN_A } }) }), NOW_MS, p))).to.equal(OIN_A);
      // The default place and a literal dotted key do not count.
      expect(refusal(run(facts({ body: json({ oin: OIN_A }) }), NOW_MS, p))).to.deep.equal({ status: 400, reason: 'oin_missing' });
      expect(refusal(run(facts({ body: json({ 'meta.oin': OIN_A }) }), NOW_MS, p))).to.deep.equal({ status: 400, reason: 'oin_missing' });
      expect(refusal(run(facts({ body: json({ meta: { oin: 1 } }) }), NOW_MS, p))).to.deep.equal({ status: 400, reason: 'oin_not_string' });
      expect(refusal(run(facts({ body: json({ meta: { oin: OIN_B } }), oinHeader: [OIN_A] }), NOW_MS, p))).to.deep.equal({
        status: 400,
        reason: 'oin_conflict',
      });
      // A top-level oin is just another field there: tenant B's OIN in it does not matter.
      expect(allowedOin(run(facts({ body: json({ oin: OIN_B, meta: { oin: OIN_A } }) }), NOW_MS, p))).to.equal(OIN_A);
    });

    describe('keys equal to the OIN field under Unicode case folding', () => {
      for (const [title, key] of [
        ['OIN', 'OIN'],
        ['Oin', 'Oin'],
        ['oın (dotless i)', 'o\u0131n'],
      ] as const) {
        it(`refuses a body holding both "oin" and ${title} with 400 oin_key_folded`, () => {
          const body = Buffer.from(`{"oin":"${OIN_A}",${JSON.stringify(key)}:"${OIN_B}"}`);
          expect(refusal(run(facts({ body })))).to.deep.equal({ status: 400, reason: 'oin_key_folded' });
        });
      }

      it('refuses a body whose only OIN key is a case variant, even when the header names the OIN', () => {
        const body = json({ Oin: OIN_B });
        expect(refusal(run(facts({ body, oinHeader: [OIN_A] })))).to.deep.equal({ status: 400, reason: 'oin_key_folded' });
        expect(refusal(run(facts({ body: json({ OIN: OIN_A }) })))).to.deep.equal({ status: 400, reason: 'oin_key_folded' });
      });

      it('refuses the Kelvin sign and the long s along a dotted path', () => {
        const p = decisionPolicy(loadSettings({ OINGATE_OIN_FIELD: 'kind.sender.oin' }));
        const ok = json({ kind: { sender: { oin: OIN_A } } });
        expect(allowedOin(run(facts({ body: ok }), NOW_MS, p))).to.equal(OIN_A);
        // "\u212Aind" (Kelvin sign) at the top, "\u017Fender" (long s) in the middle.
        const kelvin = Buffer.from(`{"kind":{"sender":{"oin":"${OIN_A}"}},"\u212Aind":{"sender":{"oin":"${OIN_B}"}}}`);
        expect(refusal(run(facts({ body: kelvin }), NOW_MS, p))).to.deep.equal({ status: 400, reason: 'oin_key_folded' });
        const longS = Buffer.from(`{"kind":{"sender":{"oin":"${OIN_A}"},"\u017Fender":{"oin":"${OIN_B}"}}}`);
        expect(refusal(run(facts({ body: longS }), NOW_MS, p))).to.deep.equal({ status: 400, reason: 'oin_key_folded' });
      });

      it('leaves keys off the path alone, whatever their case', () => {
        expect(allowedOin(run(facts({ body: json({ oin: OIN_A, nested: { OIN: OIN_B, Oin: 1 } }) })))).to.equal(OIN_A);
        expect(allowedOin(run(facts({ body: json({ oin: OIN_A, oinx: 1, Name: 'x' }) })))).to.equal(OIN_A);
      });
    });

    it('does not read the OIN through the prototype chain', () => {
      expect(refusal(run(facts({ body: Buffer.from(`{"__proto__":{"oin":"${OIN_A}"}}`) })))).to.deep.equal({ status: 400, reason: 'oin_missing' });
      const p = decisionPolicy(loadSettings({ OINGATE_OIN_FIELD: 'constructor.oin' }));
      expect(refusal(run(facts({ body: json({}) }), NOW_MS, p))).to.deep.equal({ status: 400, reason: 'oin_missing' });
    });
  });
});
