/**
 * Contract §1 step 2, over real sockets: at a dotted OINGATE_OIN_FIELD, an
 * object anywhere along the path that holds another key equal to the path's
 * key under case folding is refused (400), since a case-blind upstream could
 * read the other one.
 */
import { expect } from 'chai';
import { call, OIN_A, OIN_B, signToken, startGate, type Gate } from '../support/gate.ts';

describe('contract: case-folded keys along a dotted OIN field', () => {
  let gate: Gate;
  const token = (): string => signToken({ oin: OIN_A });

  before(async () => {
    gate = await startGate(undefined, { OINGATE_OIN_FIELD: 'meta.sender.oin' });
  });
  after(() => gate?.close());

  it('allows the OIN at the dotted path, with unrelated keys beside it (control)', async () => {
    const res = await call(gate.url, { meta: { sender: { oin: OIN_A, name: 'x' }, other: 1 }, Oin: OIN_B }, token());
    expect(res.status, res.text).to.equal(200);
    expect(res.headers['x-authenticated-oin']).to.equal(OIN_A);
  });

  const bodies: Array<[string, unknown]> = [
    ['meta beside Meta', { meta: { sender: { oin: OIN_A } }, Meta: { sender: { oin: OIN_B } } }],
    ['sender beside SENDER', { meta: { sender: { oin: OIN_A }, SENDER: { oin: OIN_B } } }],
    ['oin beside OIN', { meta: { sender: { oin: OIN_A, OIN: OIN_B } } }],
    ['oin beside oın (dotless i)', { meta: { sender: { oin: OIN_A, 'oın': OIN_B } } }],
  ];
  for (const [where, body] of bodies) {
    it(`refuses a body with ${where} along the path`, async () => {
      const res = await call(gate.url, body, token());
      expect(res.status, res.text).to.equal(400);
      expect(res.json()['error']).to.equal('bad_request');
      expect(res.headers['x-authenticated-oin']).to.equal(undefined);
    });
  }
});
