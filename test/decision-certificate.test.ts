import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { decide, REFUSAL_REASONS, type Decision, type RequestFacts } from '../src/decision.ts';
import { readFileSync } from 'node:fs';
import { AUTHENTICATIONS, buildSnapshot, type Snapshot } from '../src/model/snapshot.ts';
import { decisionPolicy } from '../src/service.ts';
import { loadSettings } from '../src/settings.ts';
import type { CertificateFacts } from '../src/tls/facts.ts';

/**
 * The certificate steps of the pure decision (contract §9): the binding
 * table, row by row, with certificate facts given as input like the peer.
 */

const OIN_TOKEN = '00000001000000000001';
const OIN_CERT = '00000001000000000002';
const OIN_BOTH = '00000001000000000003';
const OIN_OTHER = '00000001000000000009';
const SECRET = 'binding-secret-0123456789abcdefghijklmnop';
const NOW_MS = Date.UTC(2026, 0, 1);

const policy = decisionPolicy(loadSettings({}));

function tenant(oin: string, authentication?: string): Record<string, unknown> {
  return {
    oin,
    cidrs: ['127.0.0.0/8'],
    keys: [{ kid: `k${oin.slice(-1)}`, alg: 'HS256', secret: SECRET }],
    ...(authentication ? { authentication } : {}),
  };
}

function token(oin: string): string {
  const now = NOW_MS / 1000;
  return jwt.sign({ oin, iat: now, exp: now + 600 }, SECRET, { algorithm: 'HS256', keyid: `k${oin.slice(-1)}` });
}

const NONE: CertificateFacts = { presented: false, verified: false };
const SAME = (oin: string): CertificateFacts => ({ presented: true, verified: true, oin, sha256: 'ab'.repeat(32) });
const OTHER: CertificateFacts = { presented: true, verified: true, oin: OIN_OTHER, sha256: 'cd'.repeat(32) };
const INVALID: CertificateFacts = { presented: true, verified: false, reason: 'certificate_invalid', detail: 'revoked', sha256: 'ef'.repeat(32) };
const NO_OIN: CertificateFacts = { presented: true, verified: true, reason: 'certificate_no_oin', sha256: '12'.repeat(32) };

function facts(oin: string, certificate: CertificateFacts, withToken: boolean, peer = '127.0.0.1'): RequestFacts {
  return {
    peer,
    forwardedFor: undefined,
    oinHeader: [oin],
    body: undefined,
    authorization: withToken ? `Bearer ${token(oin)}` : undefined,
    certificate,
  };
}

function outcome(decision: Decision): string {
  return decision.allowed ? 'allowed' : `${decision.status} ${decision.reason}`;
}

describe('decision: client certificates (contract §9)', () => {
  let snapshot: Snapshot;

  before(async () => {
    snapshot = await buildSnapshot(
      { tenants: [tenant(OIN_TOKEN), tenant(OIN_CERT, 'certificate'), tenant(OIN_BOTH, 'certificate+token'), { ...tenant('00000001000000000004', 'certificate'), cidrs: ['198.51.100.0/24'] }] },
      { oinPattern: /^[0-9]{20}$/, certificatesConfigured: true },
    );
  });

  it('refuses a certificate that does not verify before anything the request says: a bad or missing OIN, an unknown tenant', () => {
    for (const oin of ['not-an-oin', '00000009999999999999']) {
      expect(outcome(decide(facts(oin, INVALID, true), snapshot, policy, NOW_MS)), oin).to.equal('403 certificate_invalid');
    }
    expect(outcome(decide({ ...facts(OIN_TOKEN, INVALID, true), oinHeader: undefined }, snapshot, policy, NOW_MS))).to.equal('403 certificate_invalid');
  });

  // [tenant, certificate, token, expected]
  const table: Array<[string, string, CertificateFacts | 'same', boolean, string]> = [
    ['token', OIN_TOKEN, NONE, false, '401 token_missing'],
    ['token', OIN_TOKEN, NONE, true, 'allowed'],
    ['token', OIN_TOKEN, 'same', false, '401 token_missing'],
    ['token', OIN_TOKEN, 'same', true, 'allowed'],
    ['token', OIN_TOKEN, OTHER, false, '403 certificate_mismatch'],
    ['token', OIN_TOKEN, OTHER, true, '403 certificate_mismatch'],
    ['token', OIN_TOKEN, INVALID, false, '403 certificate_invalid'],
    ['token', OIN_TOKEN, INVALID, true, '403 certificate_invalid'],
    ['token', OIN_TOKEN, NO_OIN, true, '403 certificate_no_oin'],
    ['certificate', OIN_CERT, NONE, false, '403 certificate_missing'],
    ['certificate', OIN_CERT, NONE, true, '403 certificate_missing'],
    ['certificate', OIN_CERT, 'same', false, 'allowed'],
    ['certificate', OIN_CERT, 'same', true, 'allowed'],
    ['certificate', OIN_CERT, OTHER, false, '403 certificate_mismatch'],
    ['certificate', OIN_CERT, OTHER, true, '403 certificate_mismatch'],
    ['certificate', OIN_CERT, INVALID, false, '403 certificate_invalid'],
    ['certificate', OIN_CERT, INVALID, true, '403 certificate_invalid'],
    ['certificate', OIN_CERT, NO_OIN, false, '403 certificate_no_oin'],
    ['certificate+token', OIN_BOTH, NONE, false, '403 certificate_missing'],
    ['certificate+token', OIN_BOTH, NONE, true, '403 certificate_missing'],
    ['certificate+token', OIN_BOTH, 'same', false, '401 token_missing'],
    ['certificate+token', OIN_BOTH, 'same', true, 'allowed'],
    ['certificate+token', OIN_BOTH, OTHER, false, '403 certificate_mismatch'],
    ['certificate+token', OIN_BOTH, OTHER, true, '403 certificate_mismatch'],
    ['certificate+token', OIN_BOTH, INVALID, false, '403 certificate_invalid'],
    ['certificate+token', OIN_BOTH, INVALID, true, '403 certificate_invalid'],
  ];
  for (const [kind, oin, certificate, withToken, expected] of table) {
    const name = certificate === 'same' ? 'a verified certificate with its OIN' : certificate === NONE ? 'no certificate' : certificate === OTHER ? 'a verified certificate of another OIN' : certificate === INVALID ? 'a certificate that does not verify' : 'a verified certificate without an OIN';
    it(`decides a ${kind} tenant called with ${name} ${withToken ? 'and' : 'without'} a token: ${expected}`, () => {
      const given = certificate === 'same' ? SAME(oin) : certificate;
      expect(outcome(decide(facts(oin, given, withToken), snapshot, policy, NOW_MS))).to.equal(expected);
    });
  }

  it('treats absent certificate facts as no certificate', () => {
    const { certificate: _dropped, ...bare } = facts(OIN_CERT, NONE, true);
    expect(outcome(decide(bare, snapshot, policy, NOW_MS))).to.equal('403 certificate_missing');
  });

  it('gives a certificate tenant neither kid nor claims, and hands on the certificate digest', () => {
    const decision = decide(facts(OIN_CERT, SAME(OIN_CERT), false), snapshot, policy, NOW_MS);
    expect(decision.allowed).to.equal(true);
    if (!decision.allowed) return;
    expect(decision.kid).to.equal(null);
    expect(decision.claims).to.equal(null);
    expect(decision.certificateSha256).to.equal('ab'.repeat(32));
  });

  it('keeps the token and the certificate digest for a certificate+token tenant', () => {
    const decision = decide(facts(OIN_BOTH, SAME(OIN_BOTH), true), snapshot, policy, NOW_MS);
    expect(decision.allowed && decision.kid).to.equal('k3');
    expect(decision.allowed && decision.certificateSha256).to.equal('ab'.repeat(32));
  });

  it('checks the IP whitelist before the certificate: a certificate never lets a caller in from elsewhere', () => {
    const decision = decide(facts('00000001000000000004', SAME('00000001000000000004'), false), snapshot, policy, NOW_MS);
    expect(outcome(decision)).to.equal('403 ip_not_whitelisted');
  });

  it('names the new reasons among the refusal reasons', () => {
    for (const reason of ['certificate_missing', 'certificate_invalid', 'certificate_no_oin', 'certificate_mismatch']) {
      expect(REFUSAL_REASONS).to.include(reason);
    }
  });
});

describe('model: tenant authentication', () => {
  const build = (authentication: unknown, certificatesConfigured?: boolean) =>
    buildSnapshot(
      { tenants: [{ ...tenant(OIN_CERT), authentication }] },
      { oinPattern: /^[0-9]{20}$/, ...(certificatesConfigured !== undefined ? { certificatesConfigured } : {}) },
    );

  it('refuses an unknown authentication value, naming the field', async () => {
    const error = await build('password', true).then(() => undefined, (e: Error) => e);
    expect(error?.message).to.match(/tenants\[0\]\.authentication/).and.match(/"password"/);
  });

  it('refuses a certificate tenant when no client CA and no certificate header are set, naming the tenant', async () => {
    for (const authentication of ['certificate', 'certificate+token']) {
      const error = await build(authentication, false).then(() => undefined, (e: Error) => e);
      expect(error?.message).to.include(OIN_CERT).and.include('OINGATE_TLS_CLIENT_CA');
    }
  });

  it('accepts token tenants without any certificate setting, and changes the version with the authentication', async () => {
    const plain = await build('token', false);
    const cert = await build('certificate', true);
    expect(plain.tenants.get(OIN_CERT)?.authentication).to.equal(undefined);
    expect(cert.tenants.get(OIN_CERT)?.authentication).to.equal('certificate');
    expect(cert.version).to.not.equal(plain.version);
  });

  it('is described by the JSON Schema with the same values and default', () => {
    const schema = JSON.parse(readFileSync(new URL('../config/whitelist.schema.json', import.meta.url), 'utf8')) as {
      $defs: { tenant: { properties: Record<string, { enum?: string[]; default?: string }> } };
    };
    const property = schema.$defs.tenant.properties['authentication'];
    expect(property?.enum).to.deep.equal([...AUTHENTICATIONS]);
    expect(property?.default).to.equal('token');
  });
});
