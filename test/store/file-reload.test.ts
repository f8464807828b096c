/**
 * A large whitelist file reloaded while requests are decided: unchanged
 * tenants are taken over from the enforced snapshot, and the event loop is
 * never held for long. Real file, real watcher, the service's own build.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { expect } from 'chai';
import { makeTenants, whitelistText } from '../bench/lib/fixtures.ts';
import { eventually, startGate, type Gate } from '../support/gate.ts';

// Small enough for the suite on a shared machine, large enough that a build from scratch would stall.
const TENANTS = 20_000;
// Generous: the contract's 50 ms is measured by the bench on a quiet machine.
const MAX_PAUSE_MS = 400;

describe('reloading a large whitelist file', function () {
  this.timeout(120_000);
  let gate: Gate;
  const tenants = makeTenants(TENANTS);

  before(async () => {
    gate = await startGate(tenants.slice(0, 2));
    await gate.writeWhitelist(whitelistText(tenants));
    await eventually(() => {
      expect(gate.service.holder.current?.tenants.size).to.equal(TENANTS);
    }, 60_000);
  });
  after(() => gate.close());

  it('takes over every unchanged tenant, and two reloads back to back never hold the event loop long', async () => {
    const first = gate.service.holder.current!;
    const texts = [1, 2].map((round) => {
      tenants[round] = { ...tenants[round]!, name: `renamed ${round}` };
      return whitelistText(tenants);
    });
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    for (const [round, text] of texts.entries()) {
      await gate.writeWhitelist(text);
      await eventually(() => {
        expect(gate.service.holder.current?.tenants.get(tenants[round + 1]!.oin)?.name).to.equal(`renamed ${round + 1}`);
      }, 60_000);
    }
    delay.disable();
    const now = gate.service.holder.current!;
    expect(now.tenants.get(tenants[0]!.oin)).to.equal(first.tenants.get(tenants[0]!.oin));
    expect(now.tenants.get(tenants[TENANTS - 1]!.oin)).to.equal(first.tenants.get(tenants[TENANTS - 1]!.oin));
    expect(now.tenants.get(tenants[1]!.oin)).to.not.equal(first.tenants.get(tenants[1]!.oin));
    expect(delay.max / 1e6, 'longest event-loop delay, ms').to.be.below(MAX_PAUSE_MS);
  });
});
