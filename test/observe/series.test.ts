import { expect } from 'chai';
import { Counter, Histogram, Registry } from 'prom-client';
import { CounterSeriesSet, FastHistogram } from '../../src/observe/series.ts';

describe('observe/series', () => {
  it('FastHistogram exports the same text as a prom-client Histogram given the same observations', async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const buckets = [0.00005, 0.0001, 0.001, 0.01, 0.1];
    const reference = new Histogram({ name: 'x_seconds', help: 'h', buckets, registers: [theirs] });
    const fast = new FastHistogram({ name: 'x_seconds', help: 'h', buckets, registers: [ours] });
    for (const value of [0, 0.00005, 0.00006, 0.001, 0.05, 0.1, 0.2, 5]) {
      reference.observe(value);
      fast.observe(value);
    }
    const text = await ours.metrics();
    expect(text).to.equal(await theirs.metrics());
    expect(text).to.include('x_seconds_bucket{le="0.00005"} 2').and.include('x_seconds_bucket{le="+Inf"} 8').and.include('x_seconds_count 8');
  });

  it('CounterSeriesSet hands each series its sum at scrape time, once, alongside direct increments', async () => {
    const registry = new Registry();
    const set = new CounterSeriesSet<'reason'>();
    const counter = new Counter({ name: 'y_total', help: 'c', labelNames: ['reason'] as const, registers: [registry], collect: () => set.flush() });
    set.bind(counter);
    const series = set.create({ reason: 'a' });
    set.create({ reason: 'idle' });
    for (let i = 0; i < 5; i++) series.inc();
    counter.labels('a').inc(2);
    const first = await registry.metrics();
    const second = await registry.metrics();
    for (const text of [first, second]) {
      expect(text).to.include('y_total{reason="a"} 7');
      expect(text).to.include('y_total{reason="idle"} 0');
    }
  });
});
