/**
 * The requests (or bodies) in progress, in a list whose entries carry their
 * own links: adding and removing allocate nothing and never rehash. A Set or
 * Map that fills and empties with every request reallocates its table each
 * time it shrinks (profiled: `Set#delete` cost more than the rest of a body
 * read). Iteration is rare (a deadline sweep, a drain) and may remove the
 * entry it is at.
 */
export interface Rostered<T> {
  /** Set by the roster that holds the entry; undefined outside one. */
  rosterPrev: T | undefined;
  rosterNext: T | undefined;
}

export class Roster<T extends Rostered<T>> {
  #first: T | undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(entry: T): void {
    entry.rosterPrev = undefined;
    entry.rosterNext = this.#first;
    if (this.#first !== undefined) this.#first.rosterPrev = entry;
    this.#first = entry;
    this.#size += 1;
  }

  /** Removes the entry; one that is not in the roster (any more) is left alone. */
  delete(entry: T): void {
    const { rosterPrev: prev, rosterNext: next } = entry;
    if (prev === undefined && this.#first !== entry) return;
    if (prev === undefined) this.#first = next;
    else prev.rosterNext = next;
    if (next !== undefined) next.rosterPrev = prev;
    entry.rosterPrev = undefined;
    entry.rosterNext = undefined;
    this.#size -= 1;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    let entry = this.#first;
    while (entry !== undefined) {
      // Taken first: the caller may remove the entry it is given.
      const next = entry.rosterNext;
      yield entry;
      entry = next;
    }
  }
}
