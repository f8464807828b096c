/**
 * CIDR ranges: strict parsing at load time, fast matching per request.
 * Pure: no I/O, no HTTP.
 */
import {
  formatAddress,
  hasZoneId,
  ipv4FromUint32,
  ipv6FromWords,
  parseAddressUnmapped,
  type IpAddress,
} from './address.ts';
import type { Work } from '../model/pacing.ts';
import { IntervalCollector, IntervalSet } from './interval-set.ts';

/** A parsed, canonical CIDR range. */
export interface Cidr {
  readonly family: 4 | 6;
  /** 1..32 for IPv4, 1..128 for IPv6. */
  readonly prefix: number;
  /** Canonical text: `formatAddress(network)/prefix`. */
  readonly text: string;
  /** The first address of the range (host bits are zero). */
  readonly network: IpAddress;
  /**
   * The netmask as four 32-bit words, most significant first, laid out like
   * {@link IpAddress} words (IPv4: only the first word is used).
   */
  readonly mask: readonly [number, number, number, number];
}

/** A CIDR text that cannot be used; `message` names the input and the reason. */
export class CidrError extends Error {
  readonly code = 'ERR_INVALID_CIDR';
  /** The text that was refused, exactly as given. */
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`invalid CIDR ${JSON.stringify(input)}: ${reason}`);
    this.name = 'CidrError';
    this.input = input;
  }
}

/** True for an IPv6 address inside ::ffff:0:0/96 (kept unnormalised). */
function isMapped(a: IpAddress): boolean {
  return a.family === 6 && a.w0 === 0 && a.w1 === 0 && a.w2 === 0xffff;
}

/** Netmask word for the bits of `prefix` falling into word `index` (0..3). */
function maskWord(prefix: number, index: number): number {
  const bits = prefix - index * 32;
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

/**
 * Parses `ADDRESS/PREFIX`. Throws {@link CidrError} unless the prefix is
 * explicit, canonical decimal and in range (1..32 or 1..128; `/0` refused),
 * the address canonical (no zone id), the host bits zero, and the range not
 * inside IPv4-mapped space `::ffff:0:0/96` (write the IPv4 form instead).
 */
export function parseCidr(text: string): Cidr {
  if (typeof text !== 'string') {
    throw new CidrError(String(text), 'expected a string');
  }
  const slash = text.indexOf('/');
  if (slash < 0) {
    const single = parseAddressUnmapped(text);
    if (single !== undefined) {
      if (isMapped(single)) {
        const v4 = formatAddress(ipv4FromUint32(single.w3));
        throw new CidrError(
          text,
          `missing prefix length, and IPv4-mapped addresses are matched as IPv4 (write "${v4}/32" for a single address)`,
        );
      }
      const bits = single.family === 4 ? 32 : 128;
      throw new CidrError(
        text,
        `missing prefix length (write "${text}/${bits}" for a single address)`,
      );
    }
    throw new CidrError(text, 'expected ADDRESS/PREFIX, e.g. 203.0.113.0/24 or 2001:db8::/32');
  }

  const addressText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);

  const address = parseAddressUnmapped(addressText);
  if (address === undefined) {
    if (hasZoneId(addressText)) {
      throw new CidrError(text, `"${addressText}" has a zone id, which a CIDR range cannot have`);
    }
    throw new CidrError(text, `"${addressText}" is not a canonical IPv4 or IPv6 address`);
  }

  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText)) {
    throw new CidrError(
      text,
      `prefix length "${prefixText}" is not a decimal number without leading zeros`,
    );
  }
  const prefix = Number(prefixText);
  if (prefix === 0) {
    throw new CidrError(text, 'a /0 range would whitelist every address');
  }
  const maxPrefix = address.family === 4 ? 32 : 128;
  if (prefix > maxPrefix) {
    throw new CidrError(
      text,
      `prefix length ${prefix} is out of range for IPv${address.family} (1..${maxPrefix})`,
    );
  }

  // IPv4-mapped space ::ffff:0:0/96 and everything inside it.
  if (prefix >= 96 && isMapped(address)) {
    const v4Prefix = prefix - 96;
    const v4Text = `${formatAddress(ipv4FromUint32(address.w3))}/${v4Prefix}`;
    const advice =
      v4Prefix === 0
        ? 'list the IPv4 ranges themselves instead (0.0.0.0/0 is not allowed either)'
        : `write ${v4Text} instead`;
    throw new CidrError(
      text,
      `IPv4-mapped IPv6 ranges are not allowed because addresses are normalised to IPv4 before matching; ${advice}`,
    );
  }

  const mask = maskOf(address.family, prefix);
  if (!isNetwork(address, mask)) {
    const n0 = (address.w0 & mask[0]) >>> 0;
    const network = address.family === 4 ? ipv4FromUint32(n0) : { family: 6 as const, w0: n0, w1: (address.w1 & mask[1]) >>> 0, w2: (address.w2 & mask[2]) >>> 0, w3: (address.w3 & mask[3]) >>> 0 };
    throw new CidrError(
      text,
      `host bits are set (network is ${formatAddress(network)}/${prefix})`,
    );
  }

  // Dotted IPv4 passed the canonical check and the prefix has no leading zero:
  // the text is canonical as given. Otherwise the input itself is kept when
  // it equals the canonical text (the usual case), not the equal formatted
  // copy: that is a tree of concatenations that would stay on the heap as
  // such, some 100 bytes per range kept for every tenant.
  const canonical = address.family === 4 ? text : `${formatAddress(address)}/${prefix}`;
  return Object.freeze({
    family: address.family,
    prefix,
    text: canonical === text ? text : canonical,
    network: address,
    mask: Object.freeze(mask),
  });
}

/**
 * A range {@link parseCidr} gave on another thread, made again from its
 * canonical text, family, prefix and network words (no text parsed again).
 * Parts no parse could have given (a prefix out of range, host bits set) throw:
 * they can only come from a fault, and nothing is enforced from them.
 */
export function cidrOfParts(text: string, family: number, prefix: number, w0: number, w1: number, w2: number, w3: number): Cidr {
  const max = family === 4 ? 32 : family === 6 ? 128 : 0;
  if (typeof text !== 'string' || !Number.isInteger(prefix) || prefix < 1 || prefix > max) {
    throw new TypeError(`not the parts of a parsed CIDR: ${JSON.stringify([text, family, prefix])}`);
  }
  const mask = maskOf(family as 4 | 6, prefix);
  const network = family === 4 ? ipv4FromUint32(w0) : ipv6FromWords(w0, w1, w2, w3);
  if (network.family !== family || !isNetwork(network, mask)) {
    throw new TypeError(`not the parts of a parsed CIDR: ${JSON.stringify(text)}`);
  }
  return Object.freeze({ family: network.family, prefix, text, network, mask: Object.freeze(mask) });
}

/** The netmask of `prefix` bits as four words (IPv4: only the first is used). */
function maskOf(family: 4 | 6, prefix: number): [number, number, number, number] {
  return family === 4 ? [maskWord(prefix, 0), 0, 0, 0] : [maskWord(prefix, 0), maskWord(prefix, 1), maskWord(prefix, 2), maskWord(prefix, 3)];
}

/** True when `address` has no host bits under `mask`. Written out, not mapped over arrays: it runs for every range of a 100k-tenant load. */
function isNetwork(address: IpAddress, mask: readonly [number, number, number, number]): boolean {
  return (
    ((address.w0 & mask[0]) >>> 0) === address.w0 &&
    ((address.w1 & mask[1]) >>> 0) === address.w1 &&
    ((address.w2 & mask[2]) >>> 0) === address.w2 &&
    ((address.w3 & mask[3]) >>> 0) === address.w3
  );
}

/** Adds a range to a collector as its first and last address. */
function collect(into: IntervalCollector, c: Cidr): void {
  const n = c.network;
  const m = c.mask;
  if (c.family === 4) {
    into.add4(n.w0, (n.w0 | ~m[0]) >>> 0);
  } else {
    into.add6(n.w0, n.w1, n.w2, n.w3, (n.w0 | ~m[0]) >>> 0, (n.w1 | ~m[1]) >>> 0, (n.w2 | ~m[2]) >>> 0, (n.w3 | ~m[3]) >>> 0);
  }
}

// Up to this many ranges, a set is built at once (no generators, which cost
// a 100k-tenant reload measurable time); beyond, in steps.
const BUILD_AT_ONCE = 64;

function* collectAll(cidrs: readonly Cidr[]): Work<IntervalSet> {
  const into = new IntervalCollector();
  for (let index = 0; index < cidrs.length; index++) {
    collect(into, cidrs[index]!);
    if ((index & 255) === 255) yield;
  }
  return yield* into.build();
}

function collectNow(cidrs: readonly Cidr[]): IntervalSet {
  const into = new IntervalCollector();
  for (const c of cidrs) collect(into, c);
  return into.buildNow();
}

/**
 * An immutable set of ranges, built once: sorted, merged intervals (a scan
 * for a handful, a binary search beyond), so a tenant with 20,000 ranges
 * costs a request about 15 comparisons. No Cidr objects are kept: a
 * whitelist of 100k tenants holds 100k of these.
 */
export class CidrSet {
  /** Number of distinct ranges (duplicates by canonical text count once). */
  readonly size: number;
  readonly #intervals: IntervalSet;

  /** From parsed ranges (built at once), or from intervals built in steps by {@link CidrSet.build}. */
  constructor(source: readonly Cidr[] | IntervalSet) {
    const intervals = source instanceof IntervalSet ? source : collectNow(source);
    this.#intervals = intervals;
    this.size = intervals.distinct;
  }

  /** Builds a set in steps, for a large tenant's ranges during a reload. */
  static *build(cidrs: readonly Cidr[]): Work<CidrSet> {
    return new CidrSet(cidrs.length <= BUILD_AT_ONCE ? collectNow(cidrs) : yield* collectAll(cidrs));
  }

  /** True when `a` lies in one of the ranges. IPv4 never matches IPv6 ranges. */
  contains(a: IpAddress): boolean {
    return this.#intervals.contains(a);
  }

  /** The ranges as merged intervals, for unions that need no re-parsing. */
  get intervals(): IntervalSet {
    return this.#intervals;
  }
}

/** Parses every text and builds a set; throws the first {@link CidrError}. */
export function parseCidrList(texts: readonly string[]): CidrSet {
  return new CidrSet(texts.map(parseCidr));
}
