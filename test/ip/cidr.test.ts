import { expect } from 'chai';
import { formatAddress, parseAddress, type IpAddress } from '../../src/ip/address.ts';
import { CidrError, CidrSet, parseCidr, parseCidrList } from '../../src/ip/cidr.ts';

function addr(text: string): IpAddress {
  const a = parseAddress(text);
  if (a === undefined) throw new Error(`expected ${JSON.stringify(text)} to parse`);
  return a;
}

/** Runs parseCidr expecting a CidrError; returns it for message checks. */
function refused(text: string): CidrError {
  try {
    parseCidr(text);
  } catch (e) {
    expect(e).to.be.instanceOf(CidrError);
    const err = e as CidrError;
    expect(err.code).to.equal('ERR_INVALID_CIDR');
    expect(err.message).to.contain(`"${text}"`);
    return err;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`);
}

describe('ip/cidr', () => {
  describe('parseCidr: accepted ranges', () => {
    it('parses an IPv4 range with its family, prefix, network and mask', () => {
      const c = parseCidr('10.0.0.0/8');
      expect(c.family).to.equal(4);
      expect(c.prefix).to.equal(8);
      expect(c.text).to.equal('10.0.0.0/8');
      expect(formatAddress(c.network)).to.equal('10.0.0.0');
      expect(c.mask).to.deep.equal([0xff000000, 0, 0, 0]);
    });

    it('parses IPv4 /1 and /32', () => {
      expect(parseCidr('128.0.0.0/1').mask[0]).to.equal(0x80000000);
      const host = parseCidr('203.0.113.5/32');
      expect(host.prefix).to.equal(32);
      expect(host.mask[0]).to.equal(0xffffffff);
    });

    it('parses an IPv6 range and gives canonical RFC 5952 text', () => {
      const c = parseCidr('2001:DB8:0:0::/32');
      expect(c.family).to.equal(6);
      expect(c.prefix).to.equal(32);
      expect(c.text).to.equal('2001:db8::/32');
      expect(c.mask).to.deep.equal([0xffffffff, 0, 0, 0]);
    });

    it('builds IPv6 masks that cut inside a word', () => {
      expect(parseCidr('2001:db8:8000::/33').mask).to.deep.equal([0xffffffff, 0x80000000, 0, 0]);
      expect(parseCidr('fe80::/10').mask).to.deep.equal([0xffc00000, 0, 0, 0]);
      expect(parseCidr('::1/128').mask).to.deep.equal([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]);
      expect(parseCidr('8000::/1').mask).to.deep.equal([0x80000000, 0, 0, 0]);
    });

    it('returns a frozen value', () => {
      const c = parseCidr('10.0.0.0/8');
      expect(Object.isFrozen(c)).to.equal(true);
      expect(Object.isFrozen(c.mask)).to.equal(true);
    });
  });

  describe('parseCidr: refused ranges', () => {
    it('refuses a bare IPv4 address and suggests /32', () => {
      expect(refused('10.0.0.1').message).to.contain('"10.0.0.1/32"');
    });

    it('refuses a bare IPv6 address and suggests /128', () => {
      expect(refused('2001:db8::1').message).to.contain('"2001:db8::1/128"');
    });

    it('refuses a bare IPv4-mapped address and suggests the IPv4 /32', () => {
      expect(refused('::ffff:10.0.0.1').message).to.contain('"10.0.0.1/32"');
    });

    it('refuses /0 because it would whitelist every address', () => {
      expect(refused('0.0.0.0/0').message).to.equal(
        'invalid CIDR "0.0.0.0/0": a /0 range would whitelist every address',
      );
      expect(refused('::/0').message).to.contain('a /0 range would whitelist every address');
    });

    it('refuses a range with host bits set and names the network', () => {
      expect(refused('203.0.113.5/24').message).to.equal(
        'invalid CIDR "203.0.113.5/24": host bits are set (network is 203.0.113.0/24)',
      );
      expect(refused('10.0.0.1/31').message).to.contain('network is 10.0.0.0/31');
      expect(refused('2001:db8::1/64').message).to.contain('network is 2001:db8::/64');
      expect(refused('2001:db8:c000::/33').message).to.contain('network is 2001:db8:8000::/33');
    });

    it('refuses an IPv4 prefix above 32', () => {
      expect(refused('10.0.0.0/33').message).to.contain('out of range for IPv4 (1..32)');
    });

    it('refuses an IPv6 prefix above 128', () => {
      expect(refused('2001:db8::/129').message).to.contain('out of range for IPv6 (1..128)');
    });

    it('refuses a prefix with a leading zero', () => {
      expect(refused('10.0.0.0/024').message).to.contain('"024"');
      refused('10.0.0.0/08');
      refused('10.0.0.0/00');
    });

    it('refuses an empty, signed, spaced or non-decimal prefix', () => {
      for (const text of [
        '10.0.0.0/',
        '10.0.0.0/+8',
        '10.0.0.0/-8',
        '10.0.0.0/ 8',
        '10.0.0.0/8 ',
        '10.0.0.0/0x8',
        '10.0.0.0/8.0',
        '10.0.0.0/255.0.0.0',
        '10.0.0.0/8/8',
        '10.0.0.0/99999999999999999999',
      ]) {
        refused(text);
      }
    });

    it('refuses a non-canonical IPv4 network', () => {
      expect(refused('010.0.0.0/8').message).to.contain('"010.0.0.0" is not a canonical');
      refused('10/8');
      refused('10.0/16');
      refused('0x0a.0.0.0/8');
      refused(' 10.0.0.0/8');
    });

    it('refuses a network with a zone id', () => {
      expect(refused('fe80::%eth0/64').message).to.contain('zone id');
    });

    it('refuses bracketed IPv6 and garbage', () => {
      refused('[2001:db8::]/32');
      refused('unknown/8');
      refused('');
      refused('/8');
    });

    it('refuses the IPv4-mapped range ::ffff:0:0/96', () => {
      const err = refused('::ffff:0:0/96');
      expect(err.message).to.contain('IPv4-mapped');
      expect(err.message).to.contain('normalised to IPv4');
    });

    it('refuses ranges inside ::ffff:0:0/96 and tells the IPv4 form to write', () => {
      expect(refused('::ffff:10.0.0.0/104').message).to.contain('write 10.0.0.0/8 instead');
      expect(refused('::ffff:a00:0/104').message).to.contain('write 10.0.0.0/8 instead');
      expect(refused('::ffff:203.0.113.7/128').message).to.contain('write 203.0.113.7/32 instead');
      expect(refused('0:0:0:0:0:FFFF:C0A8:0/112').message).to.contain('write 192.168.0.0/16 instead');
    });

    it('accepts ranges next to the mapped range', () => {
      expect(parseCidr('::fffe:0:0/96').text).to.equal('::fffe:0:0/96');
      expect(parseCidr('64:ff9b::/96').text).to.equal('64:ff9b::/96');
    });

    it('throws a CidrError that is an Error with name CidrError', () => {
      const err = refused('nope');
      expect(err).to.be.instanceOf(Error);
      expect(err.name).to.equal('CidrError');
      expect(err.input).to.equal('nope');
    });
  });

  describe('CidrSet', () => {
    const set = parseCidrList(['10.0.0.0/8', '192.0.2.128/25', '2001:db8::/32', 'fe80::/10']);

    it('contains addresses inside an IPv4 range', () => {
      expect(set.contains(addr('10.1.2.3'))).to.equal(true);
      expect(set.contains(addr('192.0.2.200'))).to.equal(true);
    });

    it('contains the first and last address of a range but not one past either end', () => {
      expect(set.contains(addr('10.0.0.0'))).to.equal(true);
      expect(set.contains(addr('10.255.255.255'))).to.equal(true);
      expect(set.contains(addr('9.255.255.255'))).to.equal(false);
      expect(set.contains(addr('11.0.0.0'))).to.equal(false);
      expect(set.contains(addr('192.0.2.128'))).to.equal(true);
      expect(set.contains(addr('192.0.2.255'))).to.equal(true);
      expect(set.contains(addr('192.0.2.127'))).to.equal(false);
      expect(set.contains(addr('192.0.3.0'))).to.equal(false);
    });

    it('checks IPv6 boundaries in every word', () => {
      expect(set.contains(addr('2001:db8::'))).to.equal(true);
      expect(set.contains(addr('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'))).to.equal(true);
      expect(set.contains(addr('2001:db7:ffff:ffff:ffff:ffff:ffff:ffff'))).to.equal(false);
      expect(set.contains(addr('2001:db9::'))).to.equal(false);
      expect(set.contains(addr('fe80::1'))).to.equal(true);
      expect(set.contains(addr('febf:ffff::1'))).to.equal(true);
      expect(set.contains(addr('fec0::'))).to.equal(false);
      const deep = parseCidrList(['2001:db8:0:0:0:0:0:100/120']);
      expect(deep.contains(addr('2001:db8::100'))).to.equal(true);
      expect(deep.contains(addr('2001:db8::1ff'))).to.equal(true);
      expect(deep.contains(addr('2001:db8::ff'))).to.equal(false);
      expect(deep.contains(addr('2001:db8::200'))).to.equal(false);
      expect(deep.contains(addr('2001:db8:0:1::100'))).to.equal(false);
    });

    it('matches a /32 and a /128 exactly', () => {
      const hosts = parseCidrList(['203.0.113.7/32', '2001:db8::7/128']);
      expect(hosts.contains(addr('203.0.113.7'))).to.equal(true);
      expect(hosts.contains(addr('203.0.113.6'))).to.equal(false);
      expect(hosts.contains(addr('203.0.113.8'))).to.equal(false);
      expect(hosts.contains(addr('2001:db8::7'))).to.equal(true);
      expect(hosts.contains(addr('2001:db8::6'))).to.equal(false);
      expect(hosts.contains(addr('2001:db8::8'))).to.equal(false);
    });

    it('matches the top half of the address space (/1) including 255.255.255.255', () => {
      const top = parseCidrList(['128.0.0.0/1']);
      expect(top.contains(addr('255.255.255.255'))).to.equal(true);
      expect(top.contains(addr('128.0.0.0'))).to.equal(true);
      expect(top.contains(addr('127.255.255.255'))).to.equal(false);
    });

    it('matches an IPv4-mapped IPv6 address by its IPv4 range', () => {
      const v4only = parseCidrList(['10.0.0.0/8']);
      expect(v4only.contains(addr('::ffff:10.0.0.1'))).to.equal(true);
      expect(v4only.contains(addr('::ffff:0a00:0001'))).to.equal(true);
      expect(v4only.contains(addr('::ffff:11.0.0.1'))).to.equal(false);
    });

    it('does not match an IPv4-mapped address against an IPv6 range', () => {
      const v6only = parseCidrList(['::/8']);
      expect(v6only.contains(addr('::1'))).to.equal(true);
      expect(v6only.contains(addr('::ffff:10.0.0.1'))).to.equal(false);
    });

    it('never matches an IPv4 address against an IPv6 range', () => {
      // ::/1 covers 0:: to 7fff:...: the numeric value of every IPv4 address.
      const v6only = parseCidrList(['::/1', '::/96']);
      expect(v6only.contains(addr('0.0.0.1'))).to.equal(false);
      expect(v6only.contains(addr('10.0.0.1'))).to.equal(false);
      expect(v6only.contains(addr('::1'))).to.equal(true);
    });

    it('never matches an IPv6 address against an IPv4 range', () => {
      // 0.0.0.0/1 has network word 0 and would match w0 = 0 if families mixed.
      const v4only = parseCidrList(['0.0.0.0/1', '10.0.0.0/8']);
      expect(v4only.contains(addr('::1'))).to.equal(false);
      expect(v4only.contains(addr('a00::1'))).to.equal(false);
      expect(v4only.contains(addr('0.0.0.1'))).to.equal(true);
    });

    it('contains nothing when empty', () => {
      const empty = new CidrSet([]);
      expect(empty.size).to.equal(0);
      expect(empty.contains(addr('10.0.0.1'))).to.equal(false);
      expect(empty.contains(addr('::1'))).to.equal(false);
    });

    it('reports its size, counting duplicates once', () => {
      expect(set.size).to.equal(4);
      const dup = new CidrSet([parseCidr('10.0.0.0/8'), parseCidr('10.0.0.0/8'), parseCidr('::1/128')]);
      expect(dup.size).to.equal(2);
      expect(dup.contains(addr('10.1.2.3'))).to.equal(true);
      expect(dup.contains(addr('::1'))).to.equal(true);
      expect(dup.contains(addr('::2'))).to.equal(false);
    });
  });

  describe('parseCidrList', () => {
    it('builds a set from texts', () => {
      const s = parseCidrList(['198.51.100.0/24', '2001:db8::/48']);
      expect(s.size).to.equal(2);
      expect(s.contains(addr('198.51.100.9'))).to.equal(true);
      expect(s.contains(addr('2001:db8:0:ffff::1'))).to.equal(true);
      expect(s.contains(addr('2001:db8:1::1'))).to.equal(false);
    });

    it('throws the first CidrError', () => {
      expect(() => parseCidrList(['10.0.0.0/8', '10.0.0.1/8', '0.0.0.0/0']))
        .to.throw(CidrError)
        .with.property('message')
        .that.contains('"10.0.0.1/8"');
    });
  });
});
