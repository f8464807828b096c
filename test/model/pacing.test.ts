import { expect } from 'chai';
import { runNow, runSliced, sortIndices, type Work } from '../../src/model/pacing.ts';

function sorted(values: readonly number[]): number[] {
  return [...runNow(sortIndices(values.length, (a, b) => values[a]! - values[b]!))].map((i) => values[i]!);
}

describe('model/pacing', () => {
  describe('sortIndices', () => {
    it('sorts like Array.prototype.sort for every size around the run and merge boundaries', () => {
      let seed = 7;
      const random = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % 1000;
      for (const n of [0, 1, 2, 15, 16, 17, 31, 32, 33, 100, 1000, 4099]) {
        const values = Array.from({ length: n }, random);
        expect(sorted(values), `n=${n}`).to.deep.equal([...values].sort((a, b) => a - b));
      }
    });

    it('is stable: equal keys keep their input order', () => {
      const keys = Array.from({ length: 500 }, (_, i) => i % 7);
      const order = [...runNow(sortIndices(keys.length, (a, b) => keys[a]! - keys[b]!))];
      for (let k = 1; k < order.length; k++) {
        const [a, b] = [order[k - 1]!, order[k]!];
        if (keys[a] === keys[b]) expect(a).to.be.lessThan(b);
      }
    });

    it('yields between steps while sorting many elements', () => {
      const n = 50_000;
      const work = sortIndices(n, (a, b) => b - a);
      let steps = 0;
      let result: IteratorResult<void | Promise<void>, Uint32Array>;
      while (!(result = work.next()).done) steps++;
      expect(steps).to.be.greaterThan(100);
      expect(result.value[0]).to.equal(n - 1);
      expect(result.value[n - 1]).to.equal(0);
    });
  });

  describe('runSliced', () => {
    it('gives the event loop a turn during long work, and returns its result', async () => {
      function* busy(): Work<string> {
        const end = performance.now() + 60;
        while (performance.now() < end) yield;
        return 'done';
      }
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      try {
        expect(await runSliced(busy(), 5)).to.equal('done');
      } finally {
        clearInterval(timer);
      }
      expect(ticks).to.be.greaterThan(2);
    });

    it('rejects with what the work throws', async () => {
      function* failing(): Work<never> {
        yield;
        throw new Error('refused');
      }
      let caught: unknown;
      await runSliced(failing(), 5).catch((error: unknown) => (caught = error));
      expect((caught as Error).message).to.equal('refused');
    });
  });
});
