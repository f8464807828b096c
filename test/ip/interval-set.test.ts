import { expect } from 'chai';
import { ipv4FromUint32, ipv6FromWords, parseAddress, type IpAddress } from '../../src/ip/address.ts';
import { CidrSet, parseCidr, type Cidr } from '../../src/ip/cidr.ts';
import { IntervalCollector, IntervalSet } from '../../src/ip/interval-set.ts';
import { runNow } from '../../src/model/pacing.ts';

function addr(text: string): IpAddress {
  const a = parseAddress(text);
  if (a === undefined) throw new Error(`expected ${JSON.stringify(text)} to parse`);
  return a;
}

/** Expects every `inside` address in the set and no `outside` one. */
function expectMembers(set: { contains(a: IpAddress): boolean }, inside: readonly string[], outside: readonly string[]): void {
  for (const text of inside) expect(set.contains(addr(text)), `${text} inside`).to.equal(true);
  for (const text of outside) expect(set.contains(addr(text)), `${text} outside`).to.equal(false);
}

/** The reference: a range contains an address when the masked words match. */
function naiveContains(cidrs: readonly Cidr[], a: IpAddress): boolean {
  return cidrs.some((c) => {
    if (c.family !== a.family) return false;
    const w = [a.w0, a.w1, a.w2, a.w3];
    const n = [c.network.w0, c.network.w1, c.network.w2, c.network.w3];
    return w.every((word, k) => ((word & c.mask[k]!) >>> 0) === n[k]);
  });
}

let seed = 12345;
function random32(): number {
  // xorshift32: deterministic, so a failure can be replayed.
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

function randomV4Cidr(): Cidr {
  const prefix = 8 + (random32() % 25); // 8..32
  const mask = prefix === 32 ? 0xffffffff : (0xffffffff << (32 - prefix)) >>> 0;
  // Few distinct high bytes, so that ranges overlap, nest and touch.
  const network = (((random32() % 4) << 24) | (random32() & 0x00ffffff)) & mask;
  return parseCidr(`${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.${network & 255}/${prefix}`);
}

function randomV6Cidr(): Cidr {
  const prefix = 16 + (random32() % 113); // 16..128
  const words = [0x20010db8, random32() % 3, random32() % 5, random32() % 7];
  const texts: string[] = [];
  for (let k = 0; k < 4; k++) {
    const bits = prefix - 32 * k;
    const mask = bits >= 32 ? 0xffffffff : bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const w = (words[k]! & mask) >>> 0;
    texts.push((w >>> 16).toString(16), (w & 0xffff).toString(16));
  }
  return parseCidr(`${texts.join(':')}/${prefix}`);
}

/** Addresses at, just inside and just outside every range, and random ones. */
function probes(cidrs: readonly Cidr[]): IpAddress[] {
  const out: IpAddress[] = [];
  for (const c of cidrs) {
    const n = c.network;
    if (c.family === 4) {
      const last = (n.w0 | ~c.mask[0]) >>> 0;
      for (const v of [n.w0 - 1, n.w0, n.w0 + 1, last - 1, last, last + 1]) out.push(ipv4FromUint32(v >>> 0));
    } else {
      const last = [0, 1, 2, 3].map((k) => ([n.w0, n.w1, n.w2, n.w3][k]! | ~c.mask[k]!) >>> 0);
      out.push(n, ipv6FromWords(n.w0, n.w1, n.w2, (n.w3 - 1) >>> 0), ipv6FromWords(last[0]!, last[1]!, last[2]!, last[3]!));
      out.push(ipv6FromWords(last[0]!, last[1]!, last[2]!, (last[3]! + 1) >>> 0));
    }
  }
  for (let k = 0; k < 200; k++) out.push(ipv4FromUint32(random32() % 0x04000000), ipv6FromWords(0x20010db8, random32() % 3, random32() % 5, random32()));
  return out;
}

describe('ip/interval-set', () => {
  it('agrees with masking on random overlapping, nested and adjacent ranges, small and large', () => {
    for (const count of [1, 3, 8, 9, 50, 2000]) {
      const cidrs = Array.from({ length: count }, () => (random32() % 2 === 0 ? randomV4Cidr() : randomV6Cidr()));
      const set = new CidrSet(cidrs);
      for (const a of probes(cidrs)) {
        expect(set.contains(a), `${count} ranges, ${JSON.stringify(a)}`).to.equal(naiveContains(cidrs, a));
      }
    }
  });

  it('builds the same set in steps as at once, across the merge steps of both families', () => {
    // Past the size built at once (64), and past one merge step (1024 intervals) of each family.
    for (const count of [65, 500, 2500, 5000]) {
      const cidrs = Array.from({ length: count }, () => (random32() % 2 === 0 ? randomV4Cidr() : randomV6Cidr()));
      const stepped = runNow(CidrSet.build(cidrs));
      const direct = new CidrSet(cidrs);
      expect(stepped.size, `${count} ranges`).to.equal(direct.size);
      expect(stepped.intervals.intervals, `${count} ranges`).to.equal(direct.intervals.intervals);
      for (const a of probes(cidrs)) expect(stepped.contains(a), `${count} ranges, ${JSON.stringify(a)}`).to.equal(naiveContains(cidrs, a));
    }
  });

  it('merges overlapping and adjacent ranges, and counts distinct ones before merging', () => {
    const set = new CidrSet(['10.0.0.0/25', '10.0.0.128/25', '10.0.0.0/24', '10.0.1.0/24', '10.0.1.0/24', '2001:db8::/33', '2001:db8:8000::/33'].map(parseCidr));
    expect(set.size).to.equal(6);
    expect(set.intervals.intervals).to.equal(2);
    expectMembers(set, ['10.0.1.255', '2001:db8:ffff::1'], ['10.0.2.0', '2001:db9::']);
  });

  it('handles the ends of both address spaces', () => {
    const collector = new IntervalCollector();
    collector.add4(0xffffff00, 0xffffffff);
    collector.add4(0, 0);
    collector.add6(0xffffffff, 0xffffffff, 0xffffffff, 0xffffff00, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff);
    collector.add6(0, 0, 0, 0, 0, 0, 0, 0);
    const set = runNow(collector.build());
    expectMembers(
      set,
      ['255.255.255.255', '0.0.0.0', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::'],
      ['255.255.254.255', '0.0.0.1', '::1'],
    );
  });

  it('merges IPv6 ranges that touch across a word boundary', () => {
    const set = new CidrSet(['2001:db8::/64', '2001:db8:0:1::/64'].map(parseCidr));
    expect(set.intervals.intervals).to.equal(1);
    expectMembers(set, ['2001:db8:0:0:ffff:ffff:ffff:ffff', '2001:db8:0:1::'], ['2001:db8:0:2::']);
  });

  it('copies its intervals into another collector for a union', () => {
    const a = new CidrSet(['10.0.0.0/8', '2001:db8::/32'].map(parseCidr));
    const b = new CidrSet(['192.0.2.0/24'].map(parseCidr));
    const collector = new IntervalCollector();
    runNow(a.intervals.copyInto(collector));
    runNow(b.intervals.copyInto(collector));
    const union = runNow(collector.build());
    expectMembers(union, ['10.9.9.9', '2001:db8::1', '192.0.2.255'], ['11.0.0.0', '2001:db9::', '192.0.3.0']);
  });

  it('refuses a table that does not match its counts', () => {
    expect(() => new IntervalSet(new Uint32Array(3), 1, 0, 1)).to.throw(RangeError);
  });

  describe('at 20,000 ranges', () => {
    const cidrs: Cidr[] = [];
    for (let i = 0; i < 20_000; i++) cidrs.push(parseCidr(`10.${i >> 8}.${i & 255}.0/24`));
    for (let i = 0; i < 20_000; i += 2) cidrs.push(parseCidr(`2001:db8:${i.toString(16)}::/48`));

    it('builds in bounded time (linear, not quadratic)', () => {
      // Generous: the quadratic build took seconds; this takes a few tens of ms.
      const started = performance.now();
      const set = new CidrSet(cidrs);
      const elapsed = performance.now() - started;
      expect(set.size).to.equal(30_000);
      expect(elapsed).to.be.lessThan(2_000);
    });

    it('answers a membership test by binary search, not a scan', () => {
      const set = new CidrSet(cidrs);
      const inside = addr('10.78.31.7');
      const outside = addr('11.0.0.1');
      const inside6 = addr('2001:db8:4e1e:1::1');
      const rounds = 200_000;
      const started = performance.now();
      let hits = 0;
      for (let k = 0; k < rounds; k++) {
        if (set.contains(inside)) hits++;
        if (set.contains(outside)) hits++;
        if (set.contains(inside6)) hits++;
      }
      const elapsed = performance.now() - started;
      expect(hits).to.equal(2 * rounds);
      // A scan costs 20,000 comparisons per test (over ten seconds in all); a search about 15.
      expect(elapsed).to.be.lessThan(3_000);
    });
  });
});
