import { expect } from 'chai';
import {
  addressEquals,
  formatAddress,
  parseAddress,
  parseAddressAt,
  parseAddressUnmapped,
  parsePeerAddress,
  type IpAddress,
} from '../../src/ip/address.ts';

function parsed(text: string): IpAddress {
  const a = parseAddress(text);
  if (a === undefined) throw new Error(`expected ${JSON.stringify(text)} to parse`);
  return a;
}

function roundTrip(text: string): string | undefined {
  const a = parseAddress(text);
  return a === undefined ? undefined : formatAddress(a);
}

describe('ip/address', () => {
  describe('parseAddress: IPv4', () => {
    it('parses dotted decimal into an unsigned 32-bit word', () => {
      const a = parsed('10.0.0.1');
      expect(a.family).to.equal(4);
      expect(a.w0).to.equal(0x0a000001);
      expect([a.w1, a.w2, a.w3]).to.deep.equal([0, 0, 0]);
    });

    it('parses the lowest and highest IPv4 addresses', () => {
      expect(parsed('0.0.0.0').w0).to.equal(0);
      expect(parsed('255.255.255.255').w0).to.equal(0xffffffff);
    });

    it('accepts a lone 0 part and three-digit parts', () => {
      expect(roundTrip('0.10.100.200')).to.equal('0.10.100.200');
      expect(parsed('192.168.0.1').w0).to.equal(0xc0a80001);
    });

    it('refuses an octal IPv4 address (leading zero)', () => {
      expect(parseAddress('010.0.0.1')).to.equal(undefined);
      expect(parseAddress('10.0.0.01')).to.equal(undefined);
      expect(parseAddress('10.00.0.1')).to.equal(undefined);
    });

    it('refuses a short IPv4 form like 127.1', () => {
      expect(parseAddress('127.1')).to.equal(undefined);
      expect(parseAddress('127')).to.equal(undefined);
      expect(parseAddress('2130706433')).to.equal(undefined);
    });

    it('refuses a hex IPv4 address', () => {
      expect(parseAddress('0x7f.0.0.1')).to.equal(undefined);
      expect(parseAddress('0x7f000001')).to.equal(undefined);
    });

    it('refuses an IPv4 address with three parts', () => {
      expect(parseAddress('1.2.3')).to.equal(undefined);
    });

    it('refuses an IPv4 address with five parts or a trailing dot', () => {
      expect(parseAddress('1.2.3.4.5')).to.equal(undefined);
      expect(parseAddress('1.2.3.4.')).to.equal(undefined);
      expect(parseAddress('.1.2.3.4')).to.equal(undefined);
      expect(parseAddress('1..3.4')).to.equal(undefined);
    });

    it('refuses a part above 255', () => {
      expect(parseAddress('256.0.0.1')).to.equal(undefined);
      expect(parseAddress('1.2.3.256')).to.equal(undefined);
      expect(parseAddress('1.2.3.1000')).to.equal(undefined);
    });

    it('refuses surrounding whitespace', () => {
      expect(parseAddress('1.2.3.4 ')).to.equal(undefined);
      expect(parseAddress(' 1.2.3.4')).to.equal(undefined);
      expect(parseAddress('1.2.3.4\t')).to.equal(undefined);
      expect(parseAddress('1.2.3.4\n')).to.equal(undefined);
    });

    it('refuses an address with a port', () => {
      expect(parseAddress('1.2.3.4:80')).to.equal(undefined);
    });

    it('refuses signs and non-ASCII digits', () => {
      expect(parseAddress('+1.2.3.4')).to.equal(undefined);
      expect(parseAddress('1.2.3.-4')).to.equal(undefined);
      expect(parseAddress('1.2.3.\u0664')).to.equal(undefined); // Arabic-Indic 4
    });
  });

  describe('parseAddress: IPv6', () => {
    it('parses a full eight-group address into four words', () => {
      const a = parsed('2001:0db8:0000:0000:0000:ff00:0042:8329');
      expect(a.family).to.equal(6);
      expect([a.w0, a.w1, a.w2, a.w3]).to.deep.equal([0x20010db8, 0, 0xff00, 0x00428329]);
    });

    it('accepts uppercase and mixed-case hex', () => {
      const upper = parsed('2001:DB8::ABCD');
      const mixed = parsed('2001:dB8::aBcD');
      expect(formatAddress(upper)).to.equal('2001:db8::abcd');
      expect(addressEquals(upper, mixed)).to.equal(true);
    });

    it('expands :: at the start, middle and end', () => {
      expect(formatAddress(parsed('::'))).to.equal('::');
      const one = parsed('::1');
      expect([one.w0, one.w1, one.w2, one.w3]).to.deep.equal([0, 0, 0, 1]);
      const end = parsed('fe80::');
      expect([end.w0, end.w1, end.w2, end.w3]).to.deep.equal([0xfe800000, 0, 0, 0]);
      const mid = parsed('2001:db8::8:800:200c:417a');
      expect([mid.w0, mid.w1, mid.w2, mid.w3]).to.deep.equal([0x20010db8, 0, 0x00080800, 0x200c417a]);
    });

    it('accepts :: standing for a single zero group', () => {
      const a = parsed('1::2:3:4:5:6:7');
      expect([a.w0, a.w1, a.w2, a.w3]).to.deep.equal([0x00010000, 0x00020003, 0x00040005, 0x00060007]);
    });

    it('accepts an embedded dotted IPv4 tail', () => {
      const a = parsed('64:ff9b::192.0.2.33');
      expect(a.family).to.equal(6);
      expect([a.w0, a.w1, a.w2, a.w3]).to.deep.equal([0x0064ff9b, 0, 0, 0xc0000221]);
      const full = parsed('1:2:3:4:5:6:1.2.3.4');
      expect(full.w3).to.equal(0x01020304);
    });

    it('keeps the deprecated IPv4-compatible form ::a.b.c.d as IPv6', () => {
      const a = parsed('::1.2.3.4');
      expect(a.family).to.equal(6);
      expect(formatAddress(a)).to.equal('::102:304');
    });

    it('refuses a zone id', () => {
      expect(parseAddress('fe80::1%eth0')).to.equal(undefined);
      expect(parseAddress('fe80::1%1')).to.equal(undefined);
    });

    it('refuses brackets and ports', () => {
      expect(parseAddress('[::1]')).to.equal(undefined);
      expect(parseAddress('[::1]:443')).to.equal(undefined);
    });

    it('refuses malformed compression and group counts', () => {
      for (const text of [
        ':::',
        ':1',
        '1:',
        '1::2::3',
        '1:2:3:4:5:6:7:8:9',
        '1:2:3:4:5:6:7',
        '1:2:3:4:5:6:7::8',
        '::1:2:3:4:5:6:7:8',
        '12345::',
        'g::1',
        '1:2:3:4:5:6:7:1.2.3.4',
        '::1.2.3',
        '::1.2.3.4:5',
        '::010.0.0.1',
        '::256.0.0.1',
        '1.2.3.4::',
      ]) {
        expect(parseAddress(text), text).to.equal(undefined);
      }
    });

    it('refuses whitespace around IPv6 text', () => {
      expect(parseAddress(' ::1')).to.equal(undefined);
      expect(parseAddress('::1 ')).to.equal(undefined);
    });
  });

  describe('parseAddress: IPv4-mapped IPv6', () => {
    it('normalises ::ffff:a.b.c.d to the IPv4 address', () => {
      const a = parsed('::ffff:10.0.0.1');
      expect(a.family).to.equal(4);
      expect(a.w0).to.equal(0x0a000001);
      expect(addressEquals(a, parsed('10.0.0.1'))).to.equal(true);
      expect(formatAddress(a)).to.equal('10.0.0.1');
    });

    it('normalises the hex form ::ffff:0a00:0001 to the IPv4 address', () => {
      const a = parsed('::ffff:0a00:0001');
      expect(a.family).to.equal(4);
      expect(formatAddress(a)).to.equal('10.0.0.1');
    });

    it('normalises the fully written and uppercase mapped forms', () => {
      expect(roundTrip('0:0:0:0:0:FFFF:203.0.113.7')).to.equal('203.0.113.7');
      expect(roundTrip('0000:0000:0000:0000:0000:ffff:cb00:7107')).to.equal('203.0.113.7');
    });

    it('does not normalise addresses next to the mapped range', () => {
      expect(parsed('::fffe:10.0.0.1').family).to.equal(6);
      expect(parsed('1::ffff:10.0.0.1').family).to.equal(6);
    });

    it('parseAddressUnmapped keeps the mapped form as IPv6', () => {
      const a = parseAddressUnmapped('::ffff:10.0.0.1');
      expect(a?.family).to.equal(6);
      expect(a?.w2).to.equal(0xffff);
      expect(a?.w3).to.equal(0x0a000001);
    });
  });

  describe('parseAddress: other input', () => {
    it('refuses words, the empty string and over-long text', () => {
      expect(parseAddress('unknown')).to.equal(undefined);
      expect(parseAddress('')).to.equal(undefined);
      expect(parseAddress('localhost')).to.equal(undefined);
      expect(parseAddress('1'.repeat(1000))).to.equal(undefined);
      expect(parseAddress(`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2550`)).to.equal(undefined);
    });

    it('accepts the longest canonical text', () => {
      expect(roundTrip('ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255')).to.equal(
        'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      );
    });

    it('returns undefined for a non-string at run time', () => {
      expect(parseAddress(undefined as unknown as string)).to.equal(undefined);
      expect(parseAddress(42 as unknown as string)).to.equal(undefined);
    });

    it('returns a frozen address', () => {
      const a = parsed('10.0.0.1');
      expect(Object.isFrozen(a)).to.equal(true);
      expect(() => {
        (a as { w0: number }).w0 = 1;
      }).to.throw(TypeError);
    });
  });

  describe('parseAddress: forms ipaddr.js alone would accept', () => {
    // ipaddr.js reads every one of these as some address; the canonical-form check must refuse them first.
    for (const text of [
      '0177.0.0.1',
      '0x7f000001',
      '2130706433',
      '::ffff:010.0.0.1', // ipaddr.js reads 010 as 10 here, but as 8 in plain IPv4
      '::ffff:0x7f.0.0.1',
      '::0x7f.0.0.1',
      '::ffff:1.2.3.4%eth0',
      'fe80::1%25eth0',
    ]) {
      it(`refuses ${JSON.stringify(text)}`, () => {
        expect(parseAddress(text)).to.equal(undefined);
        expect(parseAddressUnmapped(text)).to.equal(undefined);
      });
    }

    it('refuses other non-canonical shapes', () => {
      for (const text of [
        '::ffff:127.1',
        '::ffff:1.2.3.4.5',
        '::ffff:256.1.1.1',
        '00001::',
        '1:2:3:4:5:6:7:00008',
        '1.2.3.04',
        '00.0.0.0',
        '\uff11.\uff12.\uff13.\uff14', // full-width digits
        '1.2.3.4\u0000',
        '\u00001.2.3.4',
        '::1\u0000',
        '2001:db8::/32',
        '::ffff:1.2.3.4/128',
        'fe80::1%',
        '%eth0',
        ':::1',
        '1::2:3::',
      ]) {
        expect(parseAddress(text), JSON.stringify(text)).to.equal(undefined);
      }
    });

    it('reads ::FFFF:a.b.c.d in any case as the IPv4 address', () => {
      expect(roundTrip('::FFFF:203.0.113.7')).to.equal('203.0.113.7');
      expect(roundTrip('::FfFf:203.0.113.7')).to.equal('203.0.113.7');
    });
  });

  describe('remembered answers', () => {
    it('gives the same answer when asked again, refusals included', () => {
      for (let round = 0; round < 3; round++) {
        expect(parseAddress('010.0.0.1')).to.equal(undefined);
        expect(parsePeerAddress('127.1')).to.equal(undefined);
        expect(formatAddress(parsed('::ffff:10.0.0.1'))).to.equal('10.0.0.1');
        // The unmapped parse is never answered from the mapped one's memory.
        expect(parseAddressUnmapped('::ffff:10.0.0.1')?.family).to.equal(6);
      }
    });

    it('stays correct after more distinct addresses than it remembers', () => {
      for (let i = 0; i < 10_000; i++) {
        const text = `10.${(i >> 8) & 255}.${i & 255}.1`;
        expect(parsed(text).w0).to.equal(((10 << 24) | (((i >> 8) & 255) << 16) | ((i & 255) << 8) | 1) >>> 0);
      }
      expect(parseAddress('10.0.0.01')).to.equal(undefined);
    });
  });

  describe('parseAddressAt', () => {
    it('parses a slice of a string without the surrounding text', () => {
      const text = 'x 203.0.113.7,';
      expect(formatAddress(parseAddressAt(text, 2, 13)!)).to.equal('203.0.113.7');
      expect(parseAddressAt(text, 1, 13)).to.equal(undefined);
      expect(parseAddressAt(text, 2, 14)).to.equal(undefined);
    });

    it('refuses out-of-range bounds', () => {
      expect(parseAddressAt('1.2.3.4', 0, 8)).to.equal(undefined);
      expect(parseAddressAt('1.2.3.4', -1, 7)).to.equal(undefined);
    });
  });

  describe('parsePeerAddress', () => {
    it('strips an IPv6 zone id', () => {
      const a = parsePeerAddress('fe80::1%eth0');
      expect(a?.family).to.equal(6);
      expect(formatAddress(a!)).to.equal('fe80::1');
      expect(formatAddress(parsePeerAddress('fe80::abcd%2')!)).to.equal('fe80::abcd');
    });

    it('normalises the dual-stack IPv4 form Node reports', () => {
      const a = parsePeerAddress('::ffff:127.0.0.1');
      expect(a?.family).to.equal(4);
      expect(formatAddress(a!)).to.equal('127.0.0.1');
    });

    it('parses plain addresses like parseAddress', () => {
      expect(formatAddress(parsePeerAddress('198.51.100.7')!)).to.equal('198.51.100.7');
      expect(formatAddress(parsePeerAddress('::1')!)).to.equal('::1');
    });

    it('still refuses non-canonical text', () => {
      expect(parsePeerAddress('010.0.0.1')).to.equal(undefined);
      expect(parsePeerAddress('127.1')).to.equal(undefined);
      expect(parsePeerAddress('')).to.equal(undefined);
      expect(parsePeerAddress('[::1]')).to.equal(undefined);
    });

    it('refuses an empty zone id and a zone id on IPv4 text', () => {
      expect(parsePeerAddress('fe80::1%')).to.equal(undefined);
      expect(parsePeerAddress('10.0.0.1%eth0')).to.equal(undefined);
      expect(parsePeerAddress('%eth0')).to.equal(undefined);
    });
  });

  describe('formatAddress', () => {
    it('formats IPv4 as dotted decimal', () => {
      expect(roundTrip('203.0.113.255')).to.equal('203.0.113.255');
      expect(roundTrip('0.0.0.0')).to.equal('0.0.0.0');
    });

    it('lowercases hex and drops leading zeros (RFC 5952)', () => {
      expect(roundTrip('2001:0DB8:000A:0000:0000:0000:0000:0001')).to.equal('2001:db8:a::1');
    });

    it('compresses the longest zero run', () => {
      expect(roundTrip('2001:db8:0:0:1:0:0:0')).to.equal('2001:db8:0:0:1::');
      expect(roundTrip('1:0:0:2:0:0:0:3')).to.equal('1:0:0:2::3');
    });

    it('compresses the first of equally long zero runs', () => {
      expect(roundTrip('2001:db8:0:0:1:0:0:1')).to.equal('2001:db8::1:0:0:1');
    });

    it('does not compress a single zero group', () => {
      expect(roundTrip('2001:db8:0:1:1:1:1:1')).to.equal('2001:db8:0:1:1:1:1:1');
      expect(roundTrip('1::2:3:4:5:6:7')).to.equal('1:0:2:3:4:5:6:7');
    });

    it('formats the all-zero and loopback addresses', () => {
      expect(roundTrip('0:0:0:0:0:0:0:0')).to.equal('::');
      expect(roundTrip('0:0:0:0:0:0:0:1')).to.equal('::1');
      expect(roundTrip('1:0:0:0:0:0:0:0')).to.equal('1::');
    });

    it('formats an address with no zero groups in full', () => {
      expect(roundTrip('FFFF:1:2:3:4:5:6:7')).to.equal('ffff:1:2:3:4:5:6:7');
    });
  });
});
