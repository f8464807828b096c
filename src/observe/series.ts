import type { Counter } from 'prom-client';

/**
 * One series of a counter, bumped on the hot path with a plain addition.
 * prom-client's labels().inc() hashes and validates its labels on every call;
 * here that happens once per series, and the counter learns the sum when it
 * is scraped.
 */
export class CounterSeries {
  #value = 0;

  inc(by = 1): void {
    this.#value += by;
  }

  /** What accrued since the last call. */
  take(): number {
    const value = this.#value;
    this.#value = 0;
    return value;
  }
}

/**
 * The series of one prom-client counter, each resolved once. `flush` is
 * meant for the counter's `collect`, so that every scrape sees every
 * increment; increments made on the counter directly still count too.
 */
export class CounterSeriesSet<L extends string> {
  readonly #entries: Array<{ readonly labels: Partial<Record<L, string>>; readonly series: CounterSeries }> = [];
  #counter: Counter<L> | undefined;

  /** The counter the series report to; set once, right after it is built. */
  bind(counter: Counter<L>): void {
    this.#counter = counter;
  }

  /** A new series for these labels, shown as 0 until it is bumped. Callers keep it: this does not deduplicate. */
  create(labels: Partial<Record<L, string>>): CounterSeries {
    const series = new CounterSeries();
    this.#entries.push({ labels, series });
    this.#counter?.inc(labels, 0);
    return series;
  }

  flush(): void {
    const counter = this.#counter;
    if (counter === undefined) return;
    for (const entry of this.#entries) {
      const value = entry.series.take();
      if (value > 0) counter.inc(entry.labels, value);
    }
  }
}
