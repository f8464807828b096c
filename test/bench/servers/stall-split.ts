/**
 * Splits event-loop stalls into the time the main thread ran and the time
 * it waited for a CPU (Linux schedstat), so that a stall caused by other
 * work on a shared machine is told apart from one the process caused
 * itself. A 2 ms timer; each gap between its ticks is one sample.
 */
import { readFileSync } from 'node:fs';

/** One gap between two ticks: its length, and how much of it the thread ran or waited to run. */
export interface Gap {
  readonly ms: number;
  readonly ranMs: number;
  readonly waitedMs: number;
}

const NONE: Gap = { ms: 0, ranMs: 0, waitedMs: 0 };

export class StallSplit {
  /** The longest gap. */
  longest: Gap = NONE;
  /** The gap in which the thread itself ran longest: its own longest block. */
  longestOwn: Gap = NONE;
  readonly #file = `/proc/self/task/${process.pid}/schedstat`;
  #at = performance.now();
  #ran = 0;
  #waited = 0;

  /** Undefined where there is no schedstat to read. */
  static start(): StallSplit | undefined {
    const split = new StallSplit();
    try {
      split.#read();
    } catch {
      return undefined;
    }
    setInterval(() => split.#tick(), 2).unref();
    return split;
  }

  reset(): void {
    this.longest = NONE;
    this.longestOwn = NONE;
  }

  #read(): void {
    const [ran, waited] = readFileSync(this.#file, 'latin1').split(' ').map(Number);
    this.#ran = ran!;
    this.#waited = waited!;
  }

  #tick(): void {
    const now = performance.now();
    const [ran, waited] = [this.#ran, this.#waited];
    this.#read();
    const gap: Gap = { ms: now - this.#at, ranMs: (this.#ran - ran) / 1e6, waitedMs: (this.#waited - waited) / 1e6 };
    this.#at = now;
    if (gap.ms > this.longest.ms) this.longest = gap;
    if (gap.ranMs > this.longestOwn.ranMs) this.longestOwn = gap;
  }
}
