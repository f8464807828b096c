/**
 * Revocation with the file store (contract §10): a saved file's
 * `revokedTokens` and `tokensIssuedAfter` are enforced within 2 s, even for
 * a token the gate has verified and cached many times; the refusal is 401
 * with the jti (never the token) in the log; a bad entry refuses the file as
 * a whole and the last good whitelist stays; the gauge counts what is
 * enforced; and the command line says how to revoke in a file.
 */
import { expect } from 'chai';
import {
  call,
  eventually,
  OIN_A,
  OIN_B,
  SECRET_B,
  send,
  signToken,
  startEmbedded,
  startGate,
  twoTenants,
  type Gate,
  type Response,
} from '../support/gate.ts';
import { metricValue, oingate } from '../support/pg-gate.ts';

function lineOf(gate: Gate, res: Response): Record<string, unknown> | undefined {
  return gate.logs.decisions().find((line) => line['requestId'] === res.headers['x-request-id']);
}

describe('revocation with the file store', function () {
  this.timeout(20_000);
  let gate: Gate;

  beforeEach(async () => {
    gate = await startGate(twoTenants());
  });

  afterEach(async () => {
    await gate.close();
  });

  it('refuses a cached token within 2 s of the save that revokes it, naming its jti in the log', async () => {
    const token = signToken({ oin: OIN_A, jti: 'leaked-jti' });
    for (let i = 0; i < 50; i++) expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(200);
    const sameJtiOtherTenant = signToken({ oin: OIN_B, jti: 'leaked-jti' }, SECRET_B, { algorithm: 'HS256', keyid: 'b1' });
    const saved = performance.now();
    await gate.writeWhitelist(JSON.stringify({ tenants: twoTenants(), revokedTokens: [{ jti: 'leaked-jti', oin: OIN_A, reason: 'leaked' }] }));
    await eventually(async () => void expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(401), 5_000, 10);
    expect(performance.now() - saved).to.be.below(2_000);
    const res = await call(gate.url, { oin: OIN_A }, token);
    expect(lineOf(gate, res)).to.include({ reason: 'token_revoked', jti: 'leaked-jti', status: 401 });
    expect(JSON.stringify(gate.logs.lines)).to.not.include(token);
    expect((await call(gate.url, { oin: OIN_B }, sameJtiOtherTenant)).status).to.equal(200);
    expect(await metricValue(gate.adminUrl, 'oingate_revoked_tokens')).to.equal(1);
    // The reload's one line names what changed: the jti, by tenant.
    const loaded = gate.logs.lines.filter((line) => line['msg'] === 'whitelist loaded').at(-1) as { changes?: { tenants: unknown[] } } | undefined;
    expect(loaded?.changes?.tenants).to.deep.equal([{ oin: OIN_A, change: 'changed', jtisRevoked: { items: ['leaked-jti'], more: 0 } }]);
  });

  it('refuses tokens issued up to tokensIssuedAfter, and accepts one issued after', async () => {
    const now = Math.floor(Date.now() / 1000);
    const old = signToken({ oin: OIN_A, iat: now - 120 });
    expect((await call(gate.url, { oin: OIN_A }, old)).status).to.equal(200);
    const tenants = twoTenants().map((t) => (t.oin === OIN_A ? { ...t, tokensIssuedAfter: new Date((now - 60) * 1000).toISOString() } : t));
    await gate.writeWhitelist(JSON.stringify({ tenants }));
    await eventually(async () => void expect((await call(gate.url, { oin: OIN_A }, old)).status).to.equal(401));
    expect((await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, iat: now }))).status).to.equal(200);
    expect((await call(gate.url, { oin: OIN_B }, signToken({ oin: OIN_B, iat: now - 120 }, SECRET_B, { algorithm: 'HS256', keyid: 'b1' }))).status).to.equal(200);
  });

  it('refuses a file whose revocation names no tenant of it, keeping the last good whitelist and its revocations', async () => {
    const token = signToken({ oin: OIN_A, jti: 'first' });
    await gate.writeWhitelist(JSON.stringify({ tenants: twoTenants(), revokedTokens: [{ jti: 'first', oin: OIN_A }] }));
    await eventually(async () => void expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(401));
    await gate.writeWhitelist(JSON.stringify({ tenants: twoTenants(), revokedTokens: [{ jti: 'x', oin: '00000009999999999999' }] }));
    await eventually(async () => {
      const ready = (await send(gate.adminUrl, { method: 'GET', path: '/readyz' })).json();
      expect(ready['lastError']).to.include('revokedTokens[0].oin').and.include('not a tenant');
    });
    // The last good whitelist, revocation included, stays in force.
    expect((await call(gate.url, { oin: OIN_A }, token)).status).to.equal(401);
    expect((await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, jti: 'x' }))).status).to.equal(200);
  });

  it('shows the count of revoked tokens in oingate check, and says how to revoke in the file with oingate revoke', async () => {
    await gate.writeWhitelist(JSON.stringify({ tenants: twoTenants(), revokedTokens: [{ jti: 'a', oin: OIN_A }, { jti: 'b', oin: OIN_B }] }));
    const checked = await oingate(['check', gate.file], `file:${gate.file}`);
    expect(checked.code, checked.stderr).to.equal(0);
    expect(checked.stdout).to.include('2 revoked token(s)');
    const revoke = await oingate(['revoke', '--jti', 'c', '--oin', OIN_A], `file:${gate.file}`);
    expect(revoke.code).to.equal(1);
    expect(revoke.stderr).to.include('"revokedTokens"').and.include('{"jti":"c","oin":"00000001000000000001"}');
  });

  it('refuses a revoked token in a Koa API embedding the gate, before its handler runs', async () => {
    const app = await startEmbedded(twoTenants());
    try {
      const token = signToken({ oin: OIN_A, jti: 'embedded-jti' });
      expect((await call(app.url, { oin: OIN_A }, token)).status).to.equal(200);
      await app.writeWhitelist(JSON.stringify({ tenants: twoTenants(), revokedTokens: [{ jti: 'embedded-jti', oin: OIN_A }] }));
      await eventually(async () => void expect((await call(app.url, { oin: OIN_A }, token)).status).to.equal(401));
      const hits = app.hits.length;
      expect((await call(app.url, { oin: OIN_A }, token)).status).to.equal(401);
      expect(app.hits.length).to.equal(hits);
      expect(app.logs.decisions().at(-1)).to.include({ reason: 'token_revoked', jti: 'embedded-jti' });
    } finally {
      await app.close();
    }
  });
});
