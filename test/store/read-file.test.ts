import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readWhitelistFile } from '../../src/store/read-file.ts';

describe('readWhitelistFile', () => {
  // A real collection, to see what a kept string keeps alive.
  setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  let dir: string;
  const files: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-read-file-'));
    for (let n = 0; n < 3; n++) {
      // About 3 MB each: one tenant whose OIN is kept, and padding beside it.
      const tenants = Array.from({ length: 20_000 }, (_, i) => ({ oin: `${n}`.padStart(3, '0') + `${i}`.padStart(17, '0'), name: `padding tenant ${i}`, cidrs: [] }));
      const file = join(dir, `whitelist-${n}.json`);
      await writeFile(file, JSON.stringify({ tenants }));
      files.push(file);
    }
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Heap bytes still held after reading the three files and keeping one OIN of each. */
  async function retainedBy(options: { detached?: boolean }): Promise<number> {
    const oinOf = async (file: string): Promise<string> => ((await readWhitelistFile(file, options)) as { tenants: { oin: string }[] }).tenants[7]!.oin;
    collect();
    const before = process.memoryUsage().heapUsed;
    const kept = [await oinOf(files[0]!), await oinOf(files[1]!), await oinOf(files[2]!)];
    collect();
    const retained = process.memoryUsage().heapUsed - before;
    expect(kept).to.deep.equal(['00000000000000000007', '00100000000000000007', '00200000000000000007']);
    return retained;
  }

  it('keeps no file text alive through a string kept from the document', async () => {
    // The control: with strings sharing the text, each kept OIN holds its whole file.
    expect(await retainedBy({ detached: false })).to.be.greaterThan(5_000_000);
    expect(await retainedBy({})).to.be.lessThan(1_000_000);
  });
});
