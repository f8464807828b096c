import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { distIsFresh } from '../../../src/build-stamp.mjs';
import { REPO_ROOT } from './children.ts';
import { makeTenants, whitelistText } from './fixtures.ts';
import { medianOf, serveStart } from './serve-ready.ts';

describe('bench start of oingate serve', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-bench-serve-test-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('times the command from spawn to /readyz 200, says which build ran, reads its memory at rest and leaves nothing running', async () => {
    const file = join(dir, 'whitelist.json');
    await writeFile(file, whitelistText(makeTenants(10)));
    const before = Date.now();
    const start = await serveStart(`file:${file}`, { pinned: false, restMs: 200 });
    expect(start.readyMs).to.be.greaterThan(0).and.lessThan(Date.now() - before);
    expect(start.build).to.equal(distIsFresh(REPO_ROOT) ? 'dist' : 'sources');
    expect(start.rssAtRest).to.be.greaterThan(20 * 2 ** 20);
    expect(start.pinned).to.equal(false);
  });

  it('gives up on a command that listens but never gets ready, and on one that never listens', async () => {
    // A missing whitelist: the gate listens, refusing everything, and /readyz stays 503.
    const missing = await serveStart(`file:${join(dir, 'missing.json')}`, { pinned: false, timeoutMs: 3000 }).then(
      () => undefined,
      (caught: unknown) => caught as Error,
    );
    expect(missing?.message).to.match(/^oingate serve was not ready 3000 ms after it was spawned/);
    // A store setting it refuses: it exits before it listens.
    const refused = await serveStart('nosuchstore:x', { pinned: false, timeoutMs: 20_000 }).then(
      () => undefined,
      (caught: unknown) => caught as Error,
    );
    expect(refused?.message).to.match(/^oingate serve exited before it listened/);
  });

  it('takes the median of odd and even counts', () => {
    expect(medianOf([3, 1, 2])).to.equal(2);
    expect(medianOf([4, 1, 2, 3])).to.equal(2.5);
    expect(medianOf([])).to.be.NaN;
  });
});
