/**
 * A read-only map made of a large shared base and a small delta over it, so
 * that a change to a few of 100,000 entries costs in proportion to the
 * change, not a copy of the base. A delta entry of `undefined` hides the
 * base's entry. Lookups ask the delta first, then the base: two hash
 * lookups. Iteration gives the base's entries not in the delta, then the
 * delta's. Pure: no I/O.
 */
export class LayeredMap<K, V> implements ReadonlyMap<K, V> {
  readonly size: number;

  /** `size` is the number of visible entries, which the builder tracks. */
  constructor(
    readonly base: ReadonlyMap<K, V>,
    readonly delta: ReadonlyMap<K, V | undefined>,
    size: number,
  ) {
    this.size = size;
  }

  get(key: K): V | undefined {
    return this.delta.has(key) ? this.delta.get(key) : this.base.get(key);
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  *entries(): MapIterator<[K, V]> {
    for (const entry of this.base) if (!this.delta.has(entry[0])) yield entry;
    for (const [key, value] of this.delta) if (value !== undefined) yield [key, value];
  }

  *keys(): MapIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }
}

/**
 * The keys whose entries may differ between two maps, when that is known
 * without a walk over both (one is the other's base, or both share one):
 * the deltas' keys. Undefined otherwise; the caller then compares all.
 */
export function keysThatMayDiffer<K, V>(before: ReadonlyMap<K, V>, after: ReadonlyMap<K, V>): Set<K> | undefined {
  const baseOf = (map: ReadonlyMap<K, V>): ReadonlyMap<K, V> => (map instanceof LayeredMap ? (map.base as ReadonlyMap<K, V>) : map);
  if (baseOf(before) !== baseOf(after)) return undefined;
  const keys = new Set<K>();
  for (const map of [before, after]) if (map instanceof LayeredMap) for (const key of (map as LayeredMap<K, V>).delta.keys()) keys.add(key);
  return keys;
}
