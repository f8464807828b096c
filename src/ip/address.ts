/**
 * Strict IP address parsing and formatting. Pure: no I/O, no HTTP.
 *
 * Only canonical text is accepted. IPv4 is exactly four decimal parts 0..255
 * without leading zeros (no octal, hex or short forms like `127.1`). IPv6 is
 * RFC 4291 text (any case, `::` compression, dotted IPv4 tail) without zone
 * id, brackets or port. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, also written
 * `::ffff:0a00:1`) is normalised to the IPv4 address, so every later check
 * (whitelists, trusted proxies) sees one form.
 *
 * The parsers are hand-written over char codes: no regular expressions, no
 * splitting, no substring allocation. Parsing one address allocates only the
 * resulting object.
 */

/**
 * An immutable parsed address, laid out for fast masking.
 *
 * - family 4: `w0` is the address as an unsigned 32-bit integer
 *   (`10.0.0.1` → `0x0a000001`); `w1`, `w2`, `w3` are 0.
 * - family 6: `w0`..`w3` are the 128 bits as four unsigned 32-bit integers,
 *   most significant first. Never an IPv4-mapped address (those are family 4).
 */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
}

/**
 * Every address is created here, as a frozen object literal of one shape, so
 * property access stays monomorphic.
 */
function make(family: 4 | 6, w0: number, w1: number, w2: number, w3: number): IpAddress {
  return Object.freeze({ family, w0, w1, w2, w3 });
}

/** Builds an IPv4 address from its unsigned 32-bit value. */
export function ipv4FromUint32(value: number): IpAddress {
  return make(4, value >>> 0, 0, 0, 0);
}

/**
 * Builds an address from four 32-bit words, most significant first,
 * normalising IPv4-mapped addresses to IPv4.
 */
export function ipv6FromWords(w0: number, w1: number, w2: number, w3: number): IpAddress {
  if (w0 === 0 && w1 === 0 && w2 === 0xffff) return make(4, w3 >>> 0, 0, 0, 0);
  return make(6, w0 >>> 0, w1 >>> 0, w2 >>> 0, w3 >>> 0);
}

/** True when both denote the same address. */
export function addressEquals(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.w0 === b.w0 && a.w1 === b.w1 && a.w2 === b.w2 && a.w3 === b.w3;
}

// Longest canonical text: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
const MAX_TEXT_LENGTH = 45;

const CH_0 = 48;
const CH_9 = 57;
const CH_DOT = 46;
const CH_COLON = 58;

/**
 * Parses canonical dotted IPv4 text in `s[start, end)`.
 * Returns the unsigned 32-bit value, or -1.
 */
function parseIpv4Range(s: string, start: number, end: number): number {
  let i = start;
  let value = 0;
  for (let part = 0; part < 4; part++) {
    if (i >= end) return -1;
    const first = s.charCodeAt(i) - CH_0;
    if (first < 0 || first > 9) return -1;
    let n = first;
    i++;
    if (first !== 0) {
      // A leading "0" stands alone: a following digit fails the '.'/end check.
      while (i < end) {
        const d = s.charCodeAt(i) - CH_0;
        if (d < 0 || d > 9) break;
        n = n * 10 + d;
        if (n > 255) return -1;
        i++;
      }
    }
    value = value * 256 + n;
    if (part < 3) {
      if (i >= end || s.charCodeAt(i) !== CH_DOT) return -1;
      i++;
    }
  }
  return i === end ? value : -1;
}

function hexValue(c: number): number {
  if (c >= CH_0 && c <= CH_9) return c - CH_0;
  const lower = c | 0x20; // 'A'..'F' → 'a'..'f'
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

// Scratch space for the 16-bit groups of the IPv6 address being parsed.
// Parsing is synchronous, so one buffer per module is safe.
const groups = new Uint16Array(8);

/**
 * Parses RFC 4291 IPv6 text in `s[start, end)` into `groups`.
 * Returns false if the text is not a valid IPv6 address.
 */
function parseIpv6Range(s: string, start: number, end: number): boolean {
  let i = start;
  let n = 0; // groups written
  let gap = -1; // index in `groups` where "::" stands, or -1

  if (i < end && s.charCodeAt(i) === CH_COLON) {
    // A leading colon is only valid as "::".
    if (i + 1 >= end || s.charCodeAt(i + 1) !== CH_COLON) return false;
    gap = 0;
    i += 2;
  }

  if (i < end) {
    for (;;) {
      if (n >= 8) return false;
      const groupStart = i;
      let value = 0;
      while (i < end) {
        const h = hexValue(s.charCodeAt(i));
        if (h < 0) break;
        if (i - groupStart === 4) return false; // more than four hex digits
        value = value * 16 + h;
        i++;
      }
      if (i === groupStart) return false; // empty group
      if (i < end && s.charCodeAt(i) === CH_DOT) {
        // Dotted IPv4 tail: takes the last two groups and ends the text.
        if (n > 6) return false;
        const v4 = parseIpv4Range(s, groupStart, end);
        if (v4 < 0) return false;
        groups[n++] = v4 >>> 16;
        groups[n++] = v4 & 0xffff;
        break;
      }
      groups[n++] = value;
      if (i === end) break;
      if (s.charCodeAt(i) !== CH_COLON) return false;
      i++;
      if (i < end && s.charCodeAt(i) === CH_COLON) {
        if (gap >= 0) return false; // a second "::"
        gap = n;
        i++;
        if (i === end) break;
      } else if (i === end) {
        return false; // trailing single colon
      }
    }
  }

  if (gap < 0) return n === 8;
  if (n > 7) return false; // "::" must stand for at least one group
  // Move the groups after the gap to the end and zero-fill the gap.
  const tail = n - gap;
  for (let k = 1; k <= tail; k++) groups[8 - k] = groups[n - k]!;
  for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  return true;
}

/** Parses `s[start, end)`; `mapped` false keeps IPv4-mapped IPv6 as family 6. */
function parseRange(s: string, start: number, end: number, mapped: boolean): IpAddress | undefined {
  const length = end - start;
  if (length <= 0 || length > MAX_TEXT_LENGTH) return undefined;
  // The first character that is not a decimal digit tells the family.
  let i = start;
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c < CH_0 || c > CH_9) break;
    i++;
  }
  if (i < end && s.charCodeAt(i) === CH_DOT) {
    const v4 = parseIpv4Range(s, start, end);
    return v4 < 0 ? undefined : make(4, v4, 0, 0, 0);
  }
  if (!parseIpv6Range(s, start, end)) return undefined;
  const g = groups;
  const w0 = ((g[0]! << 16) | g[1]!) >>> 0;
  const w1 = ((g[2]! << 16) | g[3]!) >>> 0;
  const w2 = ((g[4]! << 16) | g[5]!) >>> 0;
  const w3 = ((g[6]! << 16) | g[7]!) >>> 0;
  if (mapped && w0 === 0 && w1 === 0 && w2 === 0xffff) return make(4, w3, 0, 0, 0);
  return make(6, w0, w1, w2, w3);
}

/**
 * Parses canonical address text. IPv4-mapped IPv6 becomes the IPv4 address.
 * Returns undefined for anything else: short/octal/hex IPv4, whitespace,
 * zone ids, brackets, ports, words like `unknown`, the empty string.
 */
export function parseAddress(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  return parseRange(text, 0, text.length, true);
}

/**
 * Like {@link parseAddress} on `text.slice(start, end)`, without allocating
 * the substring. For scanning header values.
 */
export function parseAddressAt(text: string, start: number, end: number): IpAddress | undefined {
  if (typeof text !== 'string' || start < 0 || end > text.length) return undefined;
  return parseRange(text, start, end, true);
}

/**
 * Like {@link parseAddress} but keeps IPv4-mapped IPv6 as family 6, so a
 * caller (the CIDR parser) can tell `::ffff:10.0.0.0` from `10.0.0.0`.
 */
export function parseAddressUnmapped(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  return parseRange(text, 0, text.length, false);
}

/**
 * Parses the socket's remote address as the OS reports it: canonical text,
 * except that an IPv6 zone id (`fe80::1%eth0`) is dropped first.
 */
export function parsePeerAddress(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  const percent = text.indexOf('%');
  if (percent < 0) return parseRange(text, 0, text.length, true);
  // A zone id is non-empty and only follows IPv6 text.
  if (percent === text.length - 1) return undefined;
  const a = parseRange(text, 0, percent, false);
  if (a === undefined || a.family !== 6) return undefined;
  return ipv6FromWords(a.w0, a.w1, a.w2, a.w3);
}

/** True when `text` has an IPv6 zone id (`%` suffix); for error messages. */
export function hasZoneId(text: string): boolean {
  return text.includes('%') && text.includes(':');
}

function formatIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/**
 * Formats an address: IPv4 dotted decimal; IPv6 per RFC 5952 (lowercase, no
 * leading zeros, the longest run of two or more zero groups compressed to
 * `::`, the first such run on a tie).
 */
export function formatAddress(a: IpAddress): string {
  if (a.family === 4) return formatIpv4(a.w0);
  const g = [
    a.w0 >>> 16, a.w0 & 0xffff,
    a.w1 >>> 16, a.w1 & 0xffff,
    a.w2 >>> 16, a.w2 & 0xffff,
    a.w3 >>> 16, a.w3 & 0xffff,
  ];
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not compressed
  for (let k = 0; k < 8; ) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let j = k;
    while (j < 8 && g[j] === 0) j++;
    if (j - k > bestLength) {
      bestStart = k;
      bestLength = j - k;
    }
    k = j;
  }
  const hex = (k: number): string => g[k]!.toString(16);
  if (bestStart < 0) return g.map((_, k) => hex(k)).join(':');
  let head = '';
  for (let k = 0; k < bestStart; k++) head += (k > 0 ? ':' : '') + hex(k);
  let tail = '';
  for (let k = bestStart + bestLength; k < 8; k++) tail += ':' + hex(k);
  return `${head}:${tail === '' ? ':' : tail}`;
}
