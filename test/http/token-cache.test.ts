import { expect } from 'chai';
import { call, eventually, OIN_A, OIN_B, startGate, tokenFor, twoTenants, type Gate } from '../support/gate.ts';

describe('verified-token cache in the running gate', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate();
  });
  after(() => gate.close());

  it('stops a replaced key at once and keeps the entries of tenants a reload did not change', async () => {
    const tokenA = tokenFor(OIN_A);
    const tokenB = tokenFor(OIN_B);
    for (const [oin, token] of [
      [OIN_A, tokenA],
      [OIN_B, tokenB],
    ] as const) {
      expect((await call(gate.url, { oin }, token)).status).to.equal(200);
    }
    const before = gate.service.holder.current!;
    const keysB = before.tenants.get(OIN_B)!.keys;
    expect(gate.service.tokenCache.get(tokenB, keysB)).to.not.equal(undefined);

    // Replace tenant A's key a1 by a different secret under the same kid.
    const tenants = twoTenants();
    (tenants[0] as { keys: Array<Record<string, unknown>> }).keys = [
      { kid: 'a1', alg: 'HS256', secret: 'a-completely-different-secret-0123456789' },
    ];
    await gate.writeWhitelist(tenants);
    await eventually(async () => {
      expect((await call(gate.url, { oin: OIN_A }, tokenA)).status).to.equal(401);
    });
    expect(gate.logs.last()?.['reason']).to.equal('token_bad_signature');
    // B is the very tenant it was, so its verified token still counts.
    const after = gate.service.holder.current!;
    expect(after).to.not.equal(before);
    expect(after.tenants.get(OIN_B)!.keys).to.equal(keysB);
    expect(gate.service.tokenCache.get(tokenB, keysB)).to.not.equal(undefined);
    expect((await call(gate.url, { oin: OIN_B }, tokenB)).status).to.equal(200);
  });
});
