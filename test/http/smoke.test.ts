import { expect } from 'chai';
import { call, OIN_A, OIN_B, startGate, tokenFor, type Gate } from '../support/gate.ts';

describe('public listener (smoke)', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate();
  });
  after(() => gate.close());

  it('allows a tenant calling with its own token', async () => {
    const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
    expect(res.status).to.equal(200);
    expect(res.headers['x-authenticated-oin']).to.equal(OIN_A);
  });

  it("refuses tenant A's token presented for tenant B", async () => {
    const res = await call(gate.url, { oin: OIN_B }, tokenFor(OIN_A));
    expect(res.status).to.equal(401);
    expect(res.headers['www-authenticate']).to.equal('Bearer');
  });
});
