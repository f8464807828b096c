/**
 * OINGATE_FORWARD_CLAIMS in forward-auth mode (contract §3): the named
 * claims of the verified token come back on the 200 answer as
 * x-authenticated-claim-<name>, for the front proxy to copy.
 */
import { expect } from 'chai';
import { call, OIN_A, send, signToken, startGate, type Gate } from '../support/gate.ts';

describe('forwarded claims (OINGATE_FORWARD_CLAIMS), forward-auth mode', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate(undefined, {
      OINGATE_FORWARD_CLAIMS: 'sub,level,ratio,Department,given_name,roles,profile,active,nothing,crlf,accent,padded,huge',
      OINGATE_LOG_LEVEL: 'debug',
    });
  });
  after(() => gate?.close());

  const claims = {
    sub: 'user-42',
    level: 3,
    ratio: 0.5,
    Department: 'Burgerzaken',
    given_name: 'Anna',
    roles: ['admin'],
    profile: { a: 1 },
    active: true,
    nothing: null,
    crlf: 'x\r\nx-injected: 1',
    accent: 'Súdwest',
    padded: ' spaced ',
    huge: 'y'.repeat(5000),
    unlisted: 'secret-ish',
  };

  it('passes string and number claims on the 200 answer, lower-cased, with _ read as -', async () => {
    const res = await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, ...claims }));
    expect(res.status).to.equal(200);
    expect(res.headers['x-authenticated-oin']).to.equal(OIN_A);
    expect(res.headers['x-authenticated-claim-sub']).to.equal('user-42');
    expect(res.headers['x-authenticated-claim-level']).to.equal('3');
    expect(res.headers['x-authenticated-claim-ratio']).to.equal('0.5');
    expect(res.headers['x-authenticated-claim-department']).to.equal('Burgerzaken');
    expect(res.headers['x-authenticated-claim-given-name']).to.equal('Anna');
  });

  it('leaves out other value types, unsafe header values and claims not named', async () => {
    const res = await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, ...claims }));
    expect(res.status).to.equal(200);
    const forwarded = Object.keys(res.headers).filter((name) => name.startsWith('x-authenticated-claim-')).sort();
    expect(forwarded).to.deep.equal([
      'x-authenticated-claim-department',
      'x-authenticated-claim-given-name',
      'x-authenticated-claim-level',
      'x-authenticated-claim-ratio',
      'x-authenticated-claim-sub',
    ]);
    expect(res.headers['x-injected']).to.equal(undefined);
    // Each left-out claim is named at debug level, never with its value.
    const skipped = gate.logs.lines.filter((line) => String(line['msg']).startsWith('claim not forwarded')).map((line) => line['claim']);
    expect(skipped).to.include.members(['roles', 'profile', 'active', 'nothing', 'crlf', 'accent', 'padded', 'huge']);
    expect(JSON.stringify(gate.logs.lines)).to.not.include('x-injected');
  });

  it('never answers a claim header on a refusal, nor echoes one the client sent', async () => {
    const refused = await call(gate.url, { oin: OIN_A }, signToken({ oin: '00000001000000000002', sub: 'user-42' }));
    expect(refused.status).to.equal(403);
    expect(Object.keys(refused.headers).filter((name) => name.startsWith('x-authenticated'))).to.deep.equal([]);
    const spoofed = await send(gate.url, {
      method: 'GET',
      headers: { 'x-oin': OIN_A, authorization: `Bearer ${signToken({ oin: OIN_A })}`, 'x-authenticated-claim-sub': 'admin' },
    });
    expect(spoofed.status).to.equal(200);
    expect(spoofed.headers['x-authenticated-claim-sub']).to.equal(undefined);
  });
});
