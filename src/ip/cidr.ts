/**
 * CIDR ranges: strict parsing at load time, fast matching per request.
 * Pure: no I/O, no HTTP.
 */
import {
  formatAddress,
  hasZoneId,
  ipv4FromUint32,
  parseAddressUnmapped,
  type IpAddress,
} from './address.ts';

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

  const mask: [number, number, number, number] =
    address.family === 4
      ? [maskWord(prefix, 0), 0, 0, 0]
      : [maskWord(prefix, 0), maskWord(prefix, 1), maskWord(prefix, 2), maskWord(prefix, 3)];

  const words = [address.w0, address.w1, address.w2, address.w3] as const;
  const net = [0, 1, 2, 3].map((k) => (words[k]! & mask[k]!) >>> 0) as [
    number,
    number,
    number,
    number,
  ];
  if (net.some((w, k) => w !== words[k])) {
    const network =
      address.family === 4
        ? ipv4FromUint32(net[0])
        : { family: 6 as const, w0: net[0], w1: net[1], w2: net[2], w3: net[3] };
    throw new CidrError(
      text,
      `host bits are set (network is ${formatAddress(network)}/${prefix})`,
    );
  }

  return Object.freeze({
    family: address.family,
    prefix,
    text: `${formatAddress(address)}/${prefix}`,
    network: address,
    mask: Object.freeze(mask),
  });
}

/**
 * An immutable set of ranges, built once. `contains` scans flat typed arrays
 * of precomputed network/mask words, IPv4 and IPv6 separately.
 */
export class CidrSet {
  /** Number of distinct ranges (duplicates by canonical text count once). */
  readonly size: number;
  /** IPv4 pairs [network, mask], then IPv6 groups of eight (four network words, four mask words), as int32. */
  readonly #table: Int32Array;
  /** Where the IPv6 groups start in #table. */
  readonly #v6Start: number;

  // One typed array per set, and no Cidr objects kept: a whitelist of 100k
  // tenants holds 100k of these.
  constructor(cidrs: readonly Cidr[]) {
    const distinct: Cidr[] = [];
    for (const c of cidrs) {
      if (!distinct.some((d) => d.text === c.text)) distinct.push(c);
    }
    let v4 = 0;
    for (const c of distinct) if (c.family === 4) v4++;
    const table = new Int32Array(v4 * 2 + (distinct.length - v4) * 8);
    let at4 = 0;
    let at6 = v4 * 2;
    for (const c of distinct) {
      const n = c.network;
      const m = c.mask;
      if (c.family === 4) {
        table[at4++] = n.w0 & m[0];
        table[at4++] = m[0];
      } else {
        table.set([n.w0 & m[0], n.w1 & m[1], n.w2 & m[2], n.w3 & m[3], m[0], m[1], m[2], m[3]], at6);
        at6 += 8;
      }
    }
    this.#table = table;
    this.#v6Start = v4 * 2;
    this.size = distinct.length;
  }

  /** True when `a` lies in one of the ranges. IPv4 never matches IPv6 ranges. */
  contains(a: IpAddress): boolean {
    const t = this.#table;
    if (a.family === 4) {
      const x = a.w0;
      for (let k = 0; k < this.#v6Start; k += 2) {
        if ((x & t[k + 1]!) === t[k]) return true;
      }
      return false;
    }
    const x0 = a.w0;
    const x1 = a.w1;
    const x2 = a.w2;
    const x3 = a.w3;
    for (let k = this.#v6Start; k < t.length; k += 8) {
      if (
        (x0 & t[k + 4]!) === t[k] &&
        (x1 & t[k + 5]!) === t[k + 1] &&
        (x2 & t[k + 6]!) === t[k + 2] &&
        (x3 & t[k + 7]!) === t[k + 3]
      ) {
        return true;
      }
    }
    return false;
  }

}

/** Parses every text and builds a set; throws the first {@link CidrError}. */
export function parseCidrList(texts: readonly string[]): CidrSet {
  return new CidrSet(texts.map(parseCidr));
}
