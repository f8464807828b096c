import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BaselineError, BaselineTree } from './baseline.ts';
import { REPO_ROOT } from './children.ts';

describe('bench baseline tree', function () {
  before(function () {
    // A source tarball has no history to unpack a baseline from.
    if (spawnSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT }).status !== 0) this.skip();
  });

  it('unpacks a commit with node_modules linked, and removes only its own directory', async () => {
    const tree = await BaselineTree.create('HEAD');
    try {
      expect(existsSync(join(tree.dir, 'src', 'bin.js'))).to.equal(true);
      expect(lstatSync(join(tree.dir, 'node_modules')).isSymbolicLink()).to.equal(true);
      expect(tree.label).to.match(/^HEAD = [0-9a-f]{7,} /);
      expect(tree.entry).to.equal('test/bench/servers/oingate.ts');
    } finally {
      await tree.remove();
    }
    expect(existsSync(tree.dir)).to.equal(false);
    // The link was removed, not what it points to.
    expect(readdirSync(join(REPO_ROOT, 'node_modules')).length).to.be.greaterThan(10);
  });

  it('refuses a ref that is not a commit, naming it', async () => {
    const error = await BaselineTree.create('no-such-ref-for-the-bench').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(BaselineError);
    expect((error as Error).message).to.contain('"no-such-ref-for-the-bench"');
  });

  it('refuses a ref that looks like an option', async () => {
    const error = await BaselineTree.create('--output=x').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(BaselineError);
  });
});
