import { expect } from 'chai';
import { parseAddress, type IpAddress } from '../../src/ip/address.ts';
import type { Snapshot } from '../../src/model/snapshot.ts';
import { build, doc, oinOf, tenant } from './helpers.ts';

function addr(text: string): IpAddress {
  const a = parseAddress(text);
  if (a === undefined) throw new Error(`expected ${JSON.stringify(text)} to parse`);
  return a;
}

function expectCovered(snapshot: Snapshot, inside: readonly string[], outside: readonly string[]): void {
  for (const text of inside) expect(snapshot.covers(addr(text)), `${text} covered`).to.equal(true);
  for (const text of outside) expect(snapshot.covers(addr(text)), `${text} not covered`).to.equal(false);
}

describe('Snapshot.covers', () => {
  let snapshot: Snapshot;
  before(async () => {
    snapshot = await build(
      doc(
        tenant({ oin: oinOf(1), cidrs: ['203.0.113.0/24', '2001:db8:1::/48'] }),
        tenant({ oin: oinOf(2), cidrs: ['198.51.100.128/25', '203.0.113.0/25'] }),
        tenant({ oin: oinOf(3), enabled: false, cidrs: ['192.0.2.0/24', '2001:db8:dead::/48', '203.0.113.0/24'] }),
        tenant({ oin: oinOf(4), cidrs: ['10.0.0.1/32', 'fd00::1/128'] }),
      ),
    );
  });

  it('covers addresses inside any enabled tenant’s IPv4 ranges, up to the boundaries', () => {
    expectCovered(
      snapshot,
      ['203.0.113.0', '203.0.113.255', '198.51.100.128', '198.51.100.255', '10.0.0.1'],
      ['203.0.112.255', '203.0.114.0', '198.51.100.127', '198.51.101.0', '10.0.0.0', '10.0.0.2'],
    );
  });

  it('covers addresses inside IPv6 ranges, up to the boundaries', () => {
    expectCovered(
      snapshot,
      ['2001:db8:1::', '2001:db8:1:ffff:ffff:ffff:ffff:ffff', 'fd00::1'],
      ['2001:db8:0:ffff:ffff:ffff:ffff:ffff', '2001:db8:2::', 'fd00::', 'fd00::2'],
    );
  });

  it('covers an IPv4-mapped address by its IPv4 range, and never IPv4 by IPv6 or the reverse', () => {
    expectCovered(snapshot, ['::ffff:203.0.113.7', '::ffff:10.0.0.1'], ['::ffff:192.0.2.1', '::cb00:7107', '::a00:1']);
  });

  it('does not cover a disabled tenant’s ranges unless an enabled tenant has them too', () => {
    expectCovered(snapshot, ['203.0.113.9'], ['192.0.2.1', '2001:db8:dead::1']);
  });

  it('covers nothing for an empty whitelist or one with only disabled tenants', async () => {
    expectCovered(await build(doc()), [], ['203.0.113.7', '::1']);
    expectCovered(await build(doc(tenant({ enabled: false }))), [], ['203.0.113.7', '2001:db8:1::1']);
  });

  it('answers at 20,000 tenants by a search, not a scan', async () => {
    const tenants = Array.from({ length: 20_000 }, (_, i) =>
      tenant({ oin: oinOf(i), keys: [], cidrs: [`${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`, `2001:db8:${i.toString(16)}::/48`] }),
    );
    const large = await build(doc(...tenants));
    const inside = addr('10.78.31.200');
    const outside = addr('11.0.0.1');
    const inside6 = addr('2001:db8:4e1f::1');
    expectCovered(large, ['10.78.31.200', '2001:db8:4e1f::1', '10.0.0.0'], ['11.0.0.1', '2001:db8:4e20::', '9.255.255.255', '10.78.32.0']);
    const rounds = 100_000;
    const started = performance.now();
    for (let k = 0; k < rounds; k++) {
      large.covers(inside);
      large.covers(outside);
      large.covers(inside6);
    }
    // A scan of 40,000 ranges would take seconds; generous for a busy machine.
    expect(performance.now() - started).to.be.lessThan(1_500);
  });
});
