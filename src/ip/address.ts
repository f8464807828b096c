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
 * The numbers are read by ipaddr.js, but only after the text has passed our
 * canonical-form check: ipaddr.js alone accepts octal, hex and short IPv4
 * forms and zone ids.
 */
import ipaddr from 'ipaddr.js';

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
// Checked first, so no regular expression below ever sees a long input.
const MAX_TEXT_LENGTH = 45;

/*
 * The canonical-form rule, checked before ipaddr.js sees the text: ipaddr.js
 * is lax on purpose (octal `010.0.0.1`, hex `0x7f.0.0.1`, short `127.1`,
 * zone ids, and it reads the deprecated `::1.2.3.4` as `::ffff:1.2.3.4`), so
 * it only ever parses text of a shape we already accept.
 */
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const DOTTED = `${OCTET}(?:\\.${OCTET}){3}`;
/** Four decimal parts 0..255 without leading zeros, nothing else. */
const IPV4_CANONICAL = new RegExp(`^${DOTTED}$`);
/**
 * Hex groups of at most four digits between 2..8 colons, the last group
 * optionally a canonical dotted IPv4 tail. No zone id, brackets, port or
 * space. Group counts and `::` placement are left to ipaddr.js.
 */
const IPV6_SHAPE = new RegExp(`^((?:[0-9A-Fa-f]{0,4}:){2,8})([0-9A-Fa-f]{0,4}|${DOTTED})$`);
const MAPPED_HEAD = '::ffff:';

/** Canonical dotted IPv4 text to its unsigned 32-bit value, or -1. */
function parseIpv4(text: string): number {
  if (!IPV4_CANONICAL.test(text)) return -1;
  const [a, b, c, d] = ipaddr.IPv4.parse(text).octets as [number, number, number, number];
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/**
 * Parses address text. `mapped` false keeps IPv4-mapped IPv6 as family 6
 * (for the CIDR parser, which refuses mapped ranges).
 */
function parseText(text: string, mapped: boolean): IpAddress | undefined {
  const length = text.length;
  if (length === 0 || length > MAX_TEXT_LENGTH) return undefined;
  if (!text.includes(':')) {
    const v4 = parseIpv4(text);
    return v4 < 0 ? undefined : make(4, v4, 0, 0, 0);
  }
  const shape = IPV6_SHAPE.exec(text);
  if (shape === null) return undefined;
  const head = shape[1] as string;
  const tail = shape[2] as string;
  let hex = text;
  if (tail.includes('.')) {
    const v4 = parseIpv4(tail);
    if (v4 < 0) return undefined;
    // The dual-stack peer form Node reports for every IPv4 client: no need for the IPv6 parser.
    if (head.length === MAPPED_HEAD.length && head.toLowerCase() === MAPPED_HEAD) {
      return mapped ? make(4, v4, 0, 0, 0) : make(6, 0, 0, 0xffff, v4);
    }
    // Hand ipaddr.js two hex groups instead of the dotted tail, so it never
    // applies its own reading of `::a.b.c.d`.
    hex = `${head}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  let parts: number[];
  try {
    parts = ipaddr.IPv6.parse(hex).parts;
  } catch {
    return undefined; // bad group count or `::` placement
  }
  const w0 = ((parts[0]! << 16) | parts[1]!) >>> 0;
  const w1 = ((parts[2]! << 16) | parts[3]!) >>> 0;
  const w2 = ((parts[4]! << 16) | parts[5]!) >>> 0;
  const w3 = ((parts[6]! << 16) | parts[7]!) >>> 0;
  if (mapped && w0 === 0 && w1 === 0 && w2 === 0xffff) return make(4, w3, 0, 0, 0);
  return make(6, w0, w1, w2, w3);
}

// Requests come from a limited set of peers and proxies: remembering recent
// answers spares most calls ipaddr.js's cost (about 1 µs, ten times our old
// hand-written parser). Bounded: forgotten all at once when full, so a flood
// of distinct addresses costs a few microseconds per address at most. Only
// addresses are remembered; a refusal ends its request anyway.
const MEMO_LIMIT = 4096;
const memo = new Map<string, IpAddress>();

/** {@link parseText} with IPv4-mapped addresses as IPv4, remembered. */
function parseMapped(text: string): IpAddress | undefined {
  if (text.length > MAX_TEXT_LENGTH) return undefined;
  const known = memo.get(text);
  if (known !== undefined) return known;
  const parsed = parseText(text, true);
  if (parsed !== undefined) {
    if (memo.size >= MEMO_LIMIT) memo.clear();
    // Kept as a copy: V8 may hold a slice of a header as a view of the whole
    // header, which the memo would then keep alive. Slicing a concatenation
    // flattens it into a string of its own first.
    memo.set(`${text} `.slice(0, -1), parsed);
  }
  return parsed;
}

/**
 * Parses canonical address text. IPv4-mapped IPv6 becomes the IPv4 address.
 * Returns undefined for anything else: short/octal/hex IPv4, whitespace,
 * zone ids, brackets, ports, words like `unknown`, the empty string.
 */
export function parseAddress(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  return parseMapped(text);
}

/** Like {@link parseAddress} on `text.slice(start, end)`. For scanning header values. */
export function parseAddressAt(text: string, start: number, end: number): IpAddress | undefined {
  if (typeof text !== 'string' || start < 0 || end > text.length) return undefined;
  return parseMapped(text.slice(start, end));
}

/**
 * Like {@link parseAddress} but keeps IPv4-mapped IPv6 as family 6, so a
 * caller (the CIDR parser) can tell `::ffff:10.0.0.0` from `10.0.0.0`.
 */
export function parseAddressUnmapped(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  return parseText(text, false);
}

/**
 * Parses the socket's remote address as the OS reports it: canonical text,
 * except that an IPv6 zone id (`fe80::1%eth0`) is dropped first.
 */
export function parsePeerAddress(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  const percent = text.indexOf('%');
  if (percent < 0) return parseMapped(text);
  // A zone id is non-empty and only follows IPv6 text.
  if (percent === text.length - 1) return undefined;
  const a = parseText(text.slice(0, percent), false);
  if (a === undefined || a.family !== 6) return undefined;
  return ipv6FromWords(a.w0, a.w1, a.w2, a.w3);
}

/** True when `text` has an IPv6 zone id (`%` suffix); for error messages. */
export function hasZoneId(text: string): boolean {
  return text.includes('%') && text.includes(':');
}

// formatAddress's scratch groups: it is synchronous and never re-entered.
const GROUPS = new Uint16Array(8);

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
  const g = GROUPS;
  g[0] = a.w0 >>> 16;
  g[1] = a.w0 & 0xffff;
  g[2] = a.w1 >>> 16;
  g[3] = a.w1 & 0xffff;
  g[4] = a.w2 >>> 16;
  g[5] = a.w2 & 0xffff;
  g[6] = a.w3 >>> 16;
  g[7] = a.w3 & 0xffff;
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
  // Plain loops, no closure: this runs for every decision's log line.
  if (bestStart < 0) {
    let all = g[0]!.toString(16);
    for (let k = 1; k < 8; k++) all += `:${g[k]!.toString(16)}`;
    return all;
  }
  let head = '';
  for (let k = 0; k < bestStart; k++) head += (k > 0 ? ':' : '') + g[k]!.toString(16);
  let tail = '';
  for (let k = bestStart + bestLength; k < 8; k++) tail += `:${g[k]!.toString(16)}`;
  return `${head}:${tail === '' ? ':' : tail}`;
}
