import { expect } from 'chai';
import { call, eventually, OIN_A, startGate, tokenFor, twoTenants, type Gate } from '../support/gate.ts';

describe('verified-token cache in the running gate', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate();
  });
  after(() => gate.close());

  it('is dropped on every reload, so a revoked key stops working at once', async () => {
    const token = tokenFor(OIN_A);
    expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(200);
    expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(200);
    expect(gate.service.tokenCache.size).to.be.greaterThan(0);

    // Replace tenant A's key a1 by a different secret under the same kid.
    const tenants = twoTenants();
    (tenants[0] as { keys: Array<Record<string, unknown>> }).keys = [
      { kid: 'a1', alg: 'HS256', secret: 'a-completely-different-secret-0123456789' },
    ];
    await gate.writeWhitelist(tenants);
    await eventually(async () => {
      expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(401);
    });
    expect(gate.logs.last()?.['reason']).to.equal('token_bad_signature');
    expect(gate.service.tokenCache.size).to.equal(0);
  });
});
