import { expect } from 'chai';
import { call, eventually, signToken, startGate, type Gate, type TenantSpec } from '../support/gate.ts';
import { signWith, testKey } from '../support/jwks.ts';

const OIN = '00000003000000000001';
const OLD_SECRET = 'rotation-old-secret-0123456789abcdefgh';
const newKey = testKey('new', 'ES256');
const NEW_PUBLIC_PEM = newKey.publicKey.export({ type: 'spki', format: 'pem' }) as string;

function tenant(keys: Array<Record<string, unknown>>): TenantSpec[] {
  return [{ oin: OIN, name: 'Rotating', cidrs: ['127.0.0.0/8', '::1/128'], keys }];
}

describe('zero-downtime key rotation with static keys (file store)', () => {
  let gate: Gate;
  after(() => gate?.close());

  it('moves a client from kid old to kid new, then retires old, without a single refused call', async () => {
    const oldKey = { kid: 'old', alg: 'HS256', secret: OLD_SECRET };
    const addedKey = { kid: 'new', alg: 'ES256', publicKey: NEW_PUBLIC_PEM };
    gate = await startGate(tenant([oldKey]));
    const oldToken = signToken({ oin: OIN }, OLD_SECRET, { algorithm: 'HS256', keyid: 'old' });
    const newToken = signWith(newKey, { oin: OIN });

    // The client calls all along with whichever token it currently uses.
    let current = oldToken;
    let running = true;
    let calls = 0;
    const refusals: Array<{ status: number; kid: string }> = [];
    const client = (async () => {
      while (running) {
        const token = current;
        const res = await call(gate.url, { oin: OIN }, token);
        calls++;
        if (res.status !== 200) refusals.push({ status: res.status, kid: token === oldToken ? 'old' : 'new' });
      }
    })();
    const moreCalls = async (n: number) => {
      const target = calls + n;
      await eventually(() => void expect(calls).to.be.at.least(target));
    };

    try {
      await moreCalls(10);
      expect((await call(gate.url, { oin: OIN }, newToken)).status).to.equal(401, 'new is not yet known');

      // 1. The operator adds kid new next to kid old.
      await gate.writeWhitelist(tenant([oldKey, addedKey]));
      await eventually(async () => void expect((await call(gate.url, { oin: OIN }, newToken)).status).to.equal(200));
      expect((await call(gate.url, { oin: OIN }, oldToken)).status).to.equal(200, 'old still works');
      await moreCalls(10);

      // 2. The client moves to kid new.
      current = newToken;
      await moreCalls(10);

      // 3. The operator ends kid old's window.
      const retired = { ...oldKey, expiresAt: new Date(Date.now() - 60_000).toISOString() };
      await gate.writeWhitelist(tenant([retired, addedKey]));
      await eventually(async () => void expect((await call(gate.url, { oin: OIN }, oldToken)).status).to.equal(401));
      const lastOld = gate.logs.decisions().filter((line) => line['status'] === 401).at(-1);
      expect(lastOld?.['reason']).to.equal('token_key_inactive');
      expect((await call(gate.url, { oin: OIN }, newToken)).status).to.equal(200);
      await moreCalls(10);
    } finally {
      running = false;
      await client;
    }

    expect(refusals).to.deep.equal([]);
    expect(calls).to.be.at.least(40);
  });
});
