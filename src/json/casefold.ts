/**
 * JSON object keys as case-insensitive upstreams read them. Go's
 * encoding/json matches a struct field to any key equal under Unicode
 * simple case folding (so `ſ` is `s` and the Kelvin sign is `k`), .NET's
 * OrdinalIgnoreCase compares invariant upper case (so dotless `ı` is `I`),
 * and others lower-case. Two keys that any of them could take for one are
 * one key to us: the folded form below maps each of those spellings together.
 * It may fold a little more than any single upstream does; refusing such a
 * document is the safe side.
 */

/** The key in the form two keys share when some upstream would read them as one. */
export function foldKey(key: string): string {
  // Lower, then upper, then lower: `ı`→`I`→`i`, `ſ`→`S`→`s`, Kelvin→`k`,
  // `ß`→`SS`→`ss`. Pure ASCII keys (the usual case) fold by toLowerCase alone.
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(key)) return key.toLowerCase();
  return key.toLowerCase().toUpperCase().toLowerCase();
}

/**
 * Whether `key` folds to `folded` (a foldKey result). An ASCII first
 * character folds to its own lower case whatever follows it, so a key that
 * starts otherwise is ruled out without being folded: a request body's other
 * keys, looked at on every request, mostly are.
 */
export function foldsTo(key: string, folded: string): boolean {
  const first = key.charCodeAt(0);
  if (first < 0x80) {
    const lower = first >= 0x41 && first <= 0x5a ? first | 0x20 : first;
    if (lower !== folded.charCodeAt(0)) return false;
  }
  return foldKey(key) === folded;
}

/**
 * The first key of `object` that folds to the same form as an earlier one,
 * or undefined. Exact duplicates never get here: the strict parser refuses
 * them while parsing.
 */
export function foldedCollision(object: Readonly<Record<string, unknown>>): string | undefined {
  const keys = Object.keys(object);
  if (keys.length < 2) return undefined;
  const seen = new Set<string>();
  for (const key of keys) {
    const folded = foldKey(key);
    if (seen.has(folded)) return key;
    seen.add(folded);
  }
  return undefined;
}

/**
 * The first colliding key anywhere in a parsed JSON value (every nested
 * object, inside arrays too), or undefined. Depth is bounded by the parser
 * that built the value.
 */
export function foldedCollisionDeep(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = foldedCollisionDeep(item);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  const object = value as Record<string, unknown>;
  const own = foldedCollision(object);
  if (own !== undefined) return own;
  for (const key of Object.keys(object)) {
    const found = foldedCollisionDeep(object[key]);
    if (found !== undefined) return found;
  }
  return undefined;
}
