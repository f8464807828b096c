/**
 * Contract §9, over real sockets: a whitelist in which a tenant needs a
 * client certificate while no certificate can ever arrive is refused at
 * load, naming the tenant, and the last good whitelist stays.
 */
import { expect } from 'chai';
import { call, eventually, OIN_A, OIN_B, startGate, tokenFor, twoTenants, type Gate } from '../support/gate.ts';

function whitelistWith(authentication: string): string {
  const [a, b] = twoTenants();
  return JSON.stringify({ tenants: [a, { ...b, authentication }] });
}

async function readiness(gate: Gate): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gate.adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('contract: a certificate tenant without any certificate source', () => {
  // The "certificate" start-up case is in test/http/mtls.test.ts.
  it('refuses at start-up a whitelist with a "certificate+token" tenant, naming it, and answers 503', async () => {
    const gate = await startGate(whitelistWith('certificate+token'));
    try {
      const { status, body } = await readiness(gate);
      expect(status).to.equal(503);
      expect(body['ready']).to.equal(false);
      expect(String(body['lastError'])).to.include(OIN_B);
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      expect(res.status).to.equal(503);
      expect(res.json()['error']).to.equal('unavailable');
    } finally {
      await gate.close();
    }
  });

  it('keeps the last good whitelist when a live edit makes a tenant need a certificate', async () => {
    const gate = await startGate();
    try {
      const before = await readiness(gate);
      expect(before.status).to.equal(200);
      await gate.writeWhitelist(whitelistWith('certificate'));
      await eventually(async () => {
        const { body } = await readiness(gate);
        expect(String(body['lastError'])).to.include(OIN_B);
      });
      const after = await readiness(gate);
      expect(after.status).to.equal(200);
      expect(after.body['version']).to.equal(before.body['version']);
      // The old rule (token for B) is still enforced.
      const res = await call(gate.url, { oin: OIN_B }, tokenFor(OIN_B));
      expect(res.status, res.text).to.equal(200);
    } finally {
      await gate.close();
    }
  });
});
