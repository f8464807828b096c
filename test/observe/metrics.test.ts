import { expect } from 'chai';
import { call, OIN_A, OIN_B, send, SECRET_A, signToken, startGate, tokenFor, twoTenants, type Gate } from '../support/gate.ts';
import { startUpstream, type Upstream } from '../support/upstream.ts';

async function scrape(gate: Gate): Promise<string> {
  return (await send(gate.adminUrl, { method: 'GET', path: '/metrics' })).text;
}

/** The value of one sample line (name with its labels exactly as printed), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const UNKNOWN_OIN = '00000009999999999999';

describe('metrics', () => {
  describe('proxy mode: the upstream', () => {
    let upstream: Upstream;
    let gate: Gate;
    before(async () => {
      upstream = await startUpstream();
      gate = await startGate(undefined, { OINGATE_UPSTREAM: upstream.url });
    });
    after(() => Promise.all([gate.close(), upstream.close()]));

    it('counts answers by status class and observes their latency', async () => {
      expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
      upstream.handle((_req, res) => {
        res.statusCode = 503;
        res.end('down');
      });
      expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(503);
      upstream.handle((_req, res) => {
        res.statusCode = 404;
        res.end('nope');
      });
      expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(404);
      upstream.handle();

      const text = await scrape(gate);
      expect(sample(text, 'oingate_upstream_responses_total{class="2xx"}')).to.equal(1);
      expect(sample(text, 'oingate_upstream_responses_total{class="4xx"}')).to.equal(1);
      expect(sample(text, 'oingate_upstream_responses_total{class="5xx"}')).to.equal(1);
      expect(sample(text, 'oingate_upstream_responses_total{class="3xx"}')).to.equal(0);
      expect(sample(text, 'oingate_upstream_duration_seconds_count')).to.equal(3);
      const sum = sample(text, 'oingate_upstream_duration_seconds_sum') as number;
      expect(sum).to.be.greaterThan(0).and.below(10);
      // A refused request never reaches the upstream, so it is not counted there.
      await call(gate.url, { oin: OIN_A }, undefined);
      expect(sample(await scrape(gate), 'oingate_upstream_duration_seconds_count')).to.equal(3);
    });
  });

  describe('forward-auth mode', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate();
    });
    after(() => gate.close());

    it('has no upstream metrics', async () => {
      await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      const text = await scrape(gate);
      expect(text).to.not.include('oingate_upstream_duration_seconds');
      expect(text).to.not.include('oingate_upstream_responses_total');
    });

    it('counts every decision once, however often it is scraped, and without tenant labels by default', async () => {
      const before = await scrape(gate);
      const allowedBefore = sample(before, 'oingate_decisions_total{outcome="allowed",reason="ok"}') ?? 0;
      const missingBefore = sample(before, 'oingate_decisions_total{outcome="refused",reason="token_missing"}') ?? 0;
      for (let i = 0; i < 3; i++) await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      for (let i = 0; i < 2; i++) await call(gate.url, { oin: OIN_A }, undefined);
      const first = await scrape(gate);
      const second = await scrape(gate);
      for (const text of [first, second]) {
        expect(sample(text, 'oingate_decisions_total{outcome="allowed",reason="ok"}')).to.equal(allowedBefore + 3);
        expect(sample(text, 'oingate_decisions_total{outcome="refused",reason="token_missing"}')).to.equal(missingBefore + 2);
      }
      expect(first).to.not.match(/oingate_decisions_total\{[^}]*oin=/);
    });
  });

  describe('with OINGATE_METRICS_TENANT_LABELS=true', () => {
    let gate: Gate;
    const soon = new Date(Date.now() + 3 * 86_400_000).toISOString();
    before(async () => {
      const tenants = twoTenants();
      (tenants[1] as { keys: Array<Record<string, unknown>> }).keys.push({ kid: 'b-old', alg: 'HS256', secret: 'b'.repeat(40), expiresAt: soon });
      gate = await startGate(tenants, { OINGATE_METRICS_TENANT_LABELS: 'true' });
    });
    after(() => gate.close());

    it('labels decisions with the tenant and the verified kid', async () => {
      await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
      await call(gate.url, { oin: OIN_B }, tokenFor(OIN_B));
      await call(gate.url, { oin: OIN_B }, tokenFor(OIN_B));
      // Expired, signed by a key the tenant has: its kid is the whitelist's.
      await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A, iat: 1_000, exp: 2_000 }));
      const text = await scrape(gate);
      expect(sample(text, `oingate_decisions_total{outcome="allowed",reason="ok",oin="${OIN_A}",kid="a1"}`)).to.equal(1);
      expect(sample(text, `oingate_decisions_total{outcome="allowed",reason="ok",oin="${OIN_B}",kid="b1"}`)).to.equal(2);
      expect(sample(text, `oingate_decisions_total{outcome="refused",reason="token_expired",oin="${OIN_A}",kid="a1"}`)).to.equal(1);
    });

    it("never makes a label of a caller's OIN or kid that the whitelist does not have", async () => {
      await call(gate.url, { oin: UNKNOWN_OIN }, tokenFor(OIN_A));
      await call(gate.url, { oin: OIN_A }, signToken({ oin: OIN_A }, SECRET_A, { algorithm: 'HS256', keyid: 'made-up-kid' }));
      const text = await scrape(gate);
      expect(text).to.not.include(UNKNOWN_OIN);
      expect(text).to.not.include('made-up-kid');
      expect(sample(text, 'oingate_decisions_total{outcome="refused",reason="tenant_unknown",oin="",kid=""}')).to.equal(1);
      expect(sample(text, `oingate_decisions_total{outcome="refused",reason="token_unknown_kid",oin="${OIN_A}",kid=""}`)).to.equal(1);
    });

    it('names each key that expires within 14 days', async () => {
      const text = await scrape(gate);
      expect(sample(text, `oingate_keys_expiring{oin="${OIN_B}",kid="b-old"}`)).to.equal(1);
      expect(text).to.not.match(/oingate_keys_expiring\{[^}]*kid="a1"/);
    });
  });
});
