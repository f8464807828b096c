/**
 * Address intervals, sorted and merged, IPv4 and IPv6 apart: membership in
 * O(log n) by binary search (a scan for a handful), built in O(n log n) in
 * steps. Pure: no I/O.
 */
import { runNow, sortIndices, trivialOrder, type Work } from '../model/pacing.ts';
import type { IpAddress } from './address.ts';

// Up to this many intervals of a family, a scan is as fast as a search.
const SCAN_LIMIT = 8;
// Intervals copied or merged between two yields.
const PER_STEP = 1024;

/** Sign of (words t[o..o+3]) - (x0, x1, x2, x3), as 128-bit unsigned numbers. */
function compare6(t: ArrayLike<number>, o: number, x0: number, x1: number, x2: number, x3: number): number {
  if (t[o] !== x0) return t[o]! < x0 ? -1 : 1;
  if (t[o + 1] !== x1) return t[o + 1]! < x1 ? -1 : 1;
  if (t[o + 2] !== x2) return t[o + 2]! < x2 ? -1 : 1;
  if (t[o + 3] !== x3) return t[o + 3]! < x3 ? -1 : 1;
  return 0;
}

/** Sign of t[a..a+count) - t[b..b+count), word by word. */
function compareRun(t: ArrayLike<number>, a: number, b: number, count: number): number {
  for (let w = 0; w < count; w++) {
    const d = t[a + w]! - t[b + w]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** True when the 128-bit number at t[o..o+3], plus one, equals (x0..x3). */
function precedes6(t: ArrayLike<number>, o: number, x0: number, x1: number, x2: number, x3: number): boolean {
  let carry = 1;
  const n3 = t[o + 3]! + carry;
  carry = n3 > 0xffffffff ? 1 : 0;
  const n2 = t[o + 2]! + carry;
  carry = n2 > 0xffffffff ? 1 : 0;
  const n1 = t[o + 1]! + carry;
  carry = n1 > 0xffffffff ? 1 : 0;
  const n0 = t[o]! + carry;
  if (n0 > 0xffffffff) return false; // the last address has no successor
  return n0 === x0 && n1 >>> 0 === x1 && n2 >>> 0 === x2 && n3 >>> 0 === x3;
}

/** An immutable set of disjoint, sorted intervals. Built by {@link IntervalCollector}. */
export class IntervalSet {
  /** How many distinct intervals were collected (before merging). */
  readonly distinct: number;
  /** IPv4 [start, end] pairs, then IPv6 groups of four start and four end words; all sorted. */
  readonly #table: Uint32Array;
  readonly #v4: number;
  readonly #v6: number;

  constructor(table: Uint32Array, v4: number, v6: number, distinct: number) {
    if (table.length !== v4 * 2 + v6 * 8) throw new RangeError('interval table does not match its counts');
    this.#table = table;
    this.#v4 = v4;
    this.#v6 = v6;
    this.distinct = distinct;
  }

  /** Merged intervals held, IPv4 and IPv6 together. */
  get intervals(): number {
    return this.#v4 + this.#v6;
  }

  /** True when `a` lies in one of the intervals. IPv4 never matches IPv6 intervals. */
  contains(a: IpAddress): boolean {
    return a.family === 4 ? this.#contains4(a.w0 >>> 0) : this.#contains6(a.w0 >>> 0, a.w1 >>> 0, a.w2 >>> 0, a.w3 >>> 0);
  }

  #contains4(x: number): boolean {
    const t = this.#table;
    const n = this.#v4;
    if (n <= SCAN_LIMIT) {
      for (let k = 0; k < 2 * n; k += 2) {
        if (x < t[k]!) return false;
        if (x <= t[k + 1]!) return true;
      }
      return false;
    }
    if (n === 0 || x < t[0]!) return false;
    // The last interval starting at or before x.
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (t[2 * mid]! <= x) lo = mid;
      else hi = mid - 1;
    }
    return x <= t[2 * lo + 1]!;
  }

  #contains6(x0: number, x1: number, x2: number, x3: number): boolean {
    const t = this.#table;
    const base = 2 * this.#v4;
    const n = this.#v6;
    if (n <= SCAN_LIMIT) {
      for (let k = 0; k < n; k++) {
        const o = base + 8 * k;
        if (compare6(t, o, x0, x1, x2, x3) > 0) return false;
        if (compare6(t, o + 4, x0, x1, x2, x3) >= 0) return true;
      }
      return false;
    }
    if (compare6(t, base, x0, x1, x2, x3) > 0) return false;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (compare6(t, base + 8 * mid, x0, x1, x2, x3) <= 0) lo = mid;
      else hi = mid - 1;
    }
    return compare6(t, base + 8 * lo + 4, x0, x1, x2, x3) >= 0;
  }

  /** Adds every interval to `into`, for a union of sets that needs no re-parsing. */
  *copyInto(into: IntervalCollector): Work<void> {
    const t = this.#table;
    for (let k = 0; k < this.#v4; k++) {
      into.add4(t[2 * k]!, t[2 * k + 1]!);
      if (k % PER_STEP === PER_STEP - 1) yield;
    }
    const base = 2 * this.#v4;
    for (let k = 0; k < this.#v6; k++) {
      const o = base + 8 * k;
      into.add6(t[o]!, t[o + 1]!, t[o + 2]!, t[o + 3]!, t[o + 4]!, t[o + 5]!, t[o + 6]!, t[o + 7]!);
      if (k % PER_STEP === PER_STEP - 1) yield;
    }
  }
}

/**
 * Collects intervals (any order, overlaps and duplicates allowed), then
 * builds an {@link IntervalSet}: sort, count distinct, merge overlapping and
 * adjacent ones. Words are unsigned 32-bit numbers, most significant first.
 */
export class IntervalCollector {
  readonly #v4: number[] = [];
  readonly #v6: number[] = [];

  add4(start: number, end: number): void {
    this.#v4.push(start, end);
  }

  add6(s0: number, s1: number, s2: number, s3: number, e0: number, e1: number, e2: number, e3: number): void {
    this.#v6.push(s0, s1, s2, s3, e0, e1, e2, e3);
  }

  /** Builds the set in steps (sorting and merging yield every few thousand moves). */
  *build(): Work<IntervalSet> {
    const n4 = this.#v4.length / 2;
    const n6 = this.#v6.length / 8;
    const order4 = yield* sortIndices(n4, byWords4(this.#v4));
    const order6 = yield* sortIndices(n6, byWords6(this.#v6));
    const merged = new Merged();
    for (let from = 0; from < n4; from += PER_STEP) {
      merge4(this.#v4, order4, from, Math.min(from + PER_STEP, n4), merged);
      if (from + PER_STEP < n4) yield;
    }
    for (let from = 0; from < n6; from += PER_STEP) {
      merge6(this.#v6, order6, from, Math.min(from + PER_STEP, n6), merged);
      if (from + PER_STEP < n6) yield;
    }
    return merged.set();
  }

  /**
   * Builds a small set at once, without the generators of {@link build}: a
   * tenant of a 100k whitelist has a range or two, and each generator made
   * and resumed per tenant cost a reload measurable time.
   */
  buildNow(): IntervalSet {
    const n4 = this.#v4.length / 2;
    const n6 = this.#v6.length / 8;
    // A range or two per family: no sort, no generator.
    const order4 = trivialOrder(n4) ?? runNow(sortIndices(n4, byWords4(this.#v4)));
    const order6 = trivialOrder(n6) ?? runNow(sortIndices(n6, byWords6(this.#v6)));
    const merged = new Merged();
    merge4(this.#v4, order4, 0, n4, merged);
    merge6(this.#v6, order6, 0, n6, merged);
    return merged.set();
  }
}

// Comparators over a collector's words (buildNow makes them only for a family with two or more intervals).
const byWords4 = (v4: readonly number[]) => (i: number, j: number): number => compareRun(v4, 2 * i, 2 * j, 2);
const byWords6 = (v6: readonly number[]) => (i: number, j: number): number => compareRun(v6, 8 * i, 8 * j, 8);

/** Intervals merged so far, and how many distinct ones were seen. */
class Merged {
  distinct = 0;
  readonly out4: number[] = [];
  readonly out6: number[] = [];

  set(): IntervalSet {
    const table = new Uint32Array(this.out4.length + this.out6.length);
    table.set(this.out4);
    table.set(this.out6, this.out4.length);
    return new IntervalSet(table, this.out4.length / 2, this.out6.length / 8, this.distinct);
  }
}

/** Merges the IPv4 intervals at order[from..to) (sorted) into `into`. */
function merge4(v4: readonly number[], order: Uint32Array, from: number, to: number, into: Merged): void {
  const out4 = into.out4;
  for (let k = from; k < to; k++) {
    const i = 2 * order[k]!;
    const start = v4[i]!;
    const end = v4[i + 1]!;
    if (k === 0 || compareRun(v4, i, 2 * order[k - 1]!, 2) !== 0) into.distinct++;
    const last = out4.length - 1;
    if (last > 0 && start <= out4[last]! + 1) {
      if (end > out4[last]!) out4[last] = end;
    } else {
      out4.push(start, end);
    }
  }
}

/** Merges the IPv6 intervals at order[from..to) (sorted) into `into`. */
function merge6(v6: readonly number[], order: Uint32Array, from: number, to: number, into: Merged): void {
  const out6 = into.out6;
  for (let k = from; k < to; k++) {
    const i = 8 * order[k]!;
    if (k === 0 || compareRun(v6, i, 8 * order[k - 1]!, 8) !== 0) into.distinct++;
    const lastEnd = out6.length - 4; // where the last merged interval's end words are
    const s0 = v6[i]!;
    const s1 = v6[i + 1]!;
    const s2 = v6[i + 2]!;
    const s3 = v6[i + 3]!;
    if (lastEnd > 0 && (compare6(out6, lastEnd, s0, s1, s2, s3) >= 0 || precedes6(out6, lastEnd, s0, s1, s2, s3))) {
      if (compare6(out6, lastEnd, v6[i + 4]!, v6[i + 5]!, v6[i + 6]!, v6[i + 7]!) < 0) {
        for (let w = 0; w < 4; w++) out6[lastEnd + w] = v6[i + 4 + w]!;
      }
    } else {
      for (let w = 0; w < 8; w++) out6.push(v6[i + w]!);
    }
  }
}