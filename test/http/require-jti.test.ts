/**
 * OINGATE_REQUIRE_JTI over real HTTP (contract §10): a token without a
 * string jti is refused with 401 (reason token_no_jti in the log only), a
 * token with one passes, the same token that passed once is refused on its
 * cached path too, and the default leaves jti-less tokens alone. The library
 * option requireJti does the same for an embedded gate.
 */
import { expect } from 'chai';
import { call, OIN_A, signToken, startEmbedded, startGate, tokenFor, type EmbeddedApp, type Gate, type Response } from '../support/gate.ts';

const JTI = 'cmVxdWlyZS1qdGktdGVzdA';

function expectNoJtiRefusal(res: Response, logs: { last(): Record<string, unknown> | undefined }): void {
  expect(res.status, res.text).to.equal(401);
  expect(res.headers['www-authenticate']).to.equal('Bearer');
  expect(res.json()['error']).to.equal('unauthorized');
  // The caller is not told which check failed; the log is.
  expect(res.text).to.not.include('jti');
  const line = logs.last();
  expect(line?.['requestId']).to.equal(res.headers['x-request-id']);
  expect(line?.['reason']).to.equal('token_no_jti');
  expect(line?.['status']).to.equal(401);
}

describe('OINGATE_REQUIRE_JTI', () => {
  describe('set to true', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate(undefined, { OINGATE_REQUIRE_JTI: 'true' });
    });
    after(() => gate?.close());

    it('refuses a token without jti with 401 and logs token_no_jti', async () => {
      expectNoJtiRefusal(await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A)), gate.logs);
    });

    it('refuses a token whose jti is not a string', async () => {
      expectNoJtiRefusal(await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, jti: 42 })), gate.logs);
      expectNoJtiRefusal(await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, jti: null })), gate.logs);
    });

    it('accepts a token with a string jti, on the first (full) and the second (cached) request alike', async () => {
      const token = signToken({ oin: OIN_A, jti: JTI });
      for (let i = 0; i < 2; i++) {
        const res = await call(gate.url, { oin: OIN_A }, token);
        expect(res.status, res.text).to.equal(200);
        expect(res.headers['x-authenticated-oin']).to.equal(OIN_A);
        expect(gate.logs.last()?.['reason']).to.equal('ok');
      }
    });

    it('keeps refusing a jti-less token on every repeat (it never reaches the cache as valid)', async () => {
      const token = tokenFor(OIN_A);
      for (let i = 0; i < 3; i++) expectNoJtiRefusal(await call(gate.url, { oin: OIN_A }, token), gate.logs);
    });
  });

  describe('unset (the default)', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate();
    });
    after(() => gate?.close());

    it('accepts a token without jti', async () => {
      const res = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      expect(res.status, res.text).to.equal(200);
    });
  });

  it('refuses a value that is neither true nor false at start-up, naming the variable', async () => {
    let error: unknown;
    await startGate(undefined, { OINGATE_REQUIRE_JTI: 'yes' }).then(
      (g) => g.close(),
      (e: unknown) => (error = e),
    );
    expect(String(error)).to.include('OINGATE_REQUIRE_JTI').and.include('true or false');
  });

  describe('the library option requireJti', () => {
    let api: EmbeddedApp;
    before(async () => {
      api = await startEmbedded(undefined, { requireJti: true });
    });
    after(() => api?.close());

    it('refuses a jti-less token before the API handler runs, and lets a token with jti through', async () => {
      expectNoJtiRefusal(await call(api.url, { oin: OIN_A }, tokenFor(OIN_A)), api.logs);
      expect(api.hits).to.have.length(0);
      const res = await call(api.url, { oin: OIN_A }, signToken({ oin: OIN_A, jti: JTI }));
      expect(res.status, res.text).to.equal(200);
      expect(api.hits).to.have.length(1);
    });
  });
});
