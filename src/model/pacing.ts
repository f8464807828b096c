/**
 * Long builds in steps, so that a reload of a large whitelist never stalls
 * the requests decided meanwhile. Work is a generator that yields between
 * steps (per range, per key, every few thousand sort moves); a driver either
 * runs it to its end at once, or gives the event loop a turn whenever a
 * slice of time is used up. Pure: no I/O.
 */

/**
 * Work done in steps: yields between steps, returns its result. A step that
 * yields a promise waits for it (input still arriving, e.g. tenants from the
 * thread that parses the file): only {@link runSliced} can run such work.
 */
export type Work<T> = Generator<void | Promise<void>, T, void>;

/** Runs work to its end at once: for small inputs and synchronous callers. */
export function runNow<T>(work: Work<T>): T {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
    if (step.value !== undefined) throw new TypeError('this work waits for its input: run it with runSliced');
  }
}

/**
 * Runs work, yielding to the event loop (setImmediate, so I/O and timers go
 * first) whenever more than `sliceMs` has passed since the last turn.
 */
export async function runSliced<T>(work: Work<T>, sliceMs: number): Promise<T> {
  let sliceStart = performance.now();
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
    if (step.value !== undefined) {
      // Rejects into the work's caller: what failed upstream fails the work.
      await step.value;
      sliceStart = performance.now();
    } else if (performance.now() - sliceStart > sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
}

// Shared results for the trivial sorts; callers only read them.
const NONE = new Uint32Array(0);
const FIRST = Uint32Array.of(0);

/** The order of 0 or 1 elements, shared (no sort, no allocation); undefined for more. */
export function trivialOrder(count: number): Uint32Array | undefined {
  return count === 0 ? NONE : count === 1 ? FIRST : undefined;
}

// Runs this short are sorted by insertion; merging starts from them.
const RUN = 16;
// Element moves between two yields.
const MOVES_PER_STEP = 2048;

/**
 * Sorts the indices 0..count-1 by `compare` (stable: equal elements keep
 * their order), in O(n log n) and in steps: a bottom-up merge sort, since
 * Array.prototype.sort cannot pause. The result is only to be read.
 */
export function* sortIndices(count: number, compare: (a: number, b: number) => number): Work<Uint32Array> {
  // Most tenants have one or two ranges: no sort, no allocation.
  const trivial = trivialOrder(count);
  if (trivial) return trivial;
  let from = new Uint32Array(count);
  for (let i = 0; i < count; i++) from[i] = i;
  let moves = 0;
  for (let lo = 0; lo < count; lo += RUN) {
    const hi = Math.min(lo + RUN, count);
    for (let i = lo + 1; i < hi; i++) {
      const value = from[i]!;
      let j = i - 1;
      while (j >= lo && compare(from[j]!, value) > 0) {
        from[j + 1] = from[j]!;
        j--;
      }
      from[j + 1] = value;
    }
    moves += hi - lo;
    if (moves >= MOVES_PER_STEP) {
      moves = 0;
      yield;
    }
  }
  if (count <= RUN) return from;
  let to = new Uint32Array(count);
  for (let width = RUN; width < count; width *= 2) {
    for (let lo = 0; lo < count; lo += 2 * width) {
      const mid = Math.min(lo + width, count);
      const hi = Math.min(lo + 2 * width, count);
      let i = lo;
      let j = mid;
      let k = lo;
      while (k < hi) {
        if (j >= hi || (i < mid && compare(from[i]!, from[j]!) <= 0)) to[k++] = from[i++]!;
        else to[k++] = from[j++]!;
        if (++moves >= MOVES_PER_STEP) {
          moves = 0;
          yield;
        }
      }
    }
    const swap = from;
    from = to;
    to = swap;
  }
  return from;
}
