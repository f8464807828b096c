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

interface ExportedValue {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

/**
 * A histogram without labels for the hot path: one observation is a bucket
 * search and three additions, where prom-client's observe() allocates and
 * hashes its labels. Registered on a prom-client registry as a metric of
 * its own; the text it exports is the same as a prom-client Histogram's.
 */
export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly #bounds: readonly number[];
  /** Per bucket (the last is +Inf), not cumulative. */
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(options: { name: string; help: string; buckets: readonly number[]; registers: ReadonlyArray<{ registerMetric(metric: never): void }> }) {
    this.name = options.name;
    this.help = options.help;
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
    this.#counts = new Array<number>(this.#bounds.length + 1).fill(0);
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    (this.#counts[i] as number)++;
    this.#sum += value;
    this.#count += 1;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: ExportedValue[] } {
    const values: ExportedValue[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      cumulative += this.#counts[i] as number;
      values.push({ metricName: `${this.name}_bucket`, labels: { le: i < this.#bounds.length ? (this.#bounds[i] as number) : '+Inf' }, value: cumulative });
    }
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.#sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.#count });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }
}
