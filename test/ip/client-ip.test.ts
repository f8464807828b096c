import { expect } from 'chai';
import { formatAddress } from '../../src/ip/address.ts';
import { parseCidrList } from '../../src/ip/cidr.ts';
import { resolveClientIp, type ClientIpResult } from '../../src/ip/client-ip.ts';

// Proxies: a private IPv4 block, one IPv4 host, loopback, and an IPv6 block.
const trusted = parseCidrList(['10.0.0.0/8', '198.51.100.1/32', '::1/128', 'fd00::/8']);

function clientOf(result: ClientIpResult): string {
  if (!result.ok) throw new Error(`expected ok, got ${result.reason}`);
  return formatAddress(result.ip);
}

function resolved(peer: string | undefined, xff: string | undefined): string {
  return clientOf(resolveClientIp(peer, xff, trusted));
}

function refusal(peer: string | undefined, xff: string | undefined): string {
  const result = resolveClientIp(peer, xff, trusted);
  if (result.ok) throw new Error(`expected a refusal, got ${formatAddress(result.ip)}`);
  return result.reason;
}

describe('ip/client-ip resolveClientIp', () => {
  describe('the TCP peer', () => {
    it('is the client when it is not trusted and there is no header', () => {
      expect(resolved('203.0.113.7', undefined)).to.equal('203.0.113.7');
      expect(resolved('2001:db8::7', undefined)).to.equal('2001:db8::7');
    });

    it('is normalised from the dual-stack ::ffff: form to IPv4', () => {
      const result = resolveClientIp('::ffff:203.0.113.7', undefined, trusted);
      expect(result.ok && result.ip.family).to.equal(4);
      expect(clientOf(result)).to.equal('203.0.113.7');
    });

    it('has its zone id stripped', () => {
      expect(resolved('fe80::1%eth0', undefined)).to.equal('fe80::1');
    });

    it('undefined is refused as peer_unparseable', () => {
      expect(refusal(undefined, undefined)).to.equal('peer_unparseable');
      expect(refusal(undefined, '203.0.113.7')).to.equal('peer_unparseable');
    });

    it('unparseable is refused as peer_unparseable', () => {
      for (const peer of ['', 'unknown', '010.0.0.1', '127.1', '1.2.3.4:80', '[::1]', ' 10.0.0.1']) {
        expect(refusal(peer, '203.0.113.7'), peer).to.equal('peer_unparseable');
      }
    });
  });

  describe('an untrusted peer', () => {
    it('ignores a spoofed X-Forwarded-For and yields the peer', () => {
      expect(resolved('203.0.113.7', '10.1.1.1')).to.equal('203.0.113.7');
      expect(resolved('203.0.113.7', '192.0.2.9, 10.0.0.1')).to.equal('203.0.113.7');
    });

    it('ignores even a malformed X-Forwarded-For', () => {
      expect(resolved('203.0.113.7', 'unknown, 010.0.0.1,,')).to.equal('203.0.113.7');
      expect(resolved('203.0.113.7', Array(100).fill('1.2.3.4').join(','))).to.equal('203.0.113.7');
    });

    it('is untrusted when only one past a trusted range', () => {
      expect(resolved('11.0.0.0', '192.0.2.9')).to.equal('11.0.0.0');
      expect(resolved('198.51.100.2', '192.0.2.9')).to.equal('198.51.100.2');
    });
  });

  describe('a trusted peer', () => {
    it('with no header is itself the client', () => {
      expect(resolved('10.0.0.5', undefined)).to.equal('10.0.0.5');
    });

    it('with an empty or whitespace-only header is itself the client', () => {
      expect(resolved('10.0.0.5', '')).to.equal('10.0.0.5');
      expect(resolved('10.0.0.5', '   ')).to.equal('10.0.0.5');
      expect(resolved('10.0.0.5', ' \t ')).to.equal('10.0.0.5');
    });

    it('yields the single forwarded address', () => {
      expect(resolved('10.0.0.5', '203.0.113.7')).to.equal('203.0.113.7');
      expect(resolved('::1', '2001:db8::7')).to.equal('2001:db8::7');
    });

    it('is trusted at the first and last address of a trusted range', () => {
      expect(resolved('10.0.0.0', '192.0.2.9')).to.equal('192.0.2.9');
      expect(resolved('10.255.255.255', '192.0.2.9')).to.equal('192.0.2.9');
    });

    it('is trusted when written as ::ffff: mapped IPv4', () => {
      expect(resolved('::ffff:10.0.0.5', '192.0.2.9')).to.equal('192.0.2.9');
    });

    it('trims spaces and tabs around entries', () => {
      expect(resolved('10.0.0.5', '  203.0.113.7\t')).to.equal('203.0.113.7');
      expect(resolved('10.0.0.5', '192.0.2.1 ,\t203.0.113.7 ')).to.equal('203.0.113.7');
    });
  });

  describe('walking the X-Forwarded-For chain', () => {
    it('takes the rightmost entry when it is untrusted, not the leftmost', () => {
      expect(resolved('10.0.0.5', '192.0.2.1, 203.0.113.7')).to.equal('203.0.113.7');
    });

    it('skips several trusted proxies from the right', () => {
      expect(resolved('10.0.0.5', '192.0.2.1, 203.0.113.7, 198.51.100.1, 10.9.9.9')).to.equal(
        '203.0.113.7',
      );
      expect(resolved('::1', '2001:db8::1, fd00::2, fd12::3')).to.equal('2001:db8::1');
    });

    it('walks a chain joined from several header lines', () => {
      // Node joins repeated X-Forwarded-For lines with ", ".
      expect(resolved('10.0.0.5', '192.0.2.1, 203.0.113.7, 10.1.1.1, 10.2.2.2')).to.equal(
        '203.0.113.7',
      );
    });

    it('stops at the first untrusted entry even if trusted entries lie further left', () => {
      expect(resolved('10.0.0.5', '10.3.3.3, 203.0.113.7, 10.2.2.2')).to.equal('203.0.113.7');
    });

    it('yields the leftmost entry when every entry is trusted', () => {
      expect(resolved('10.0.0.5', '10.1.1.1, 10.2.2.2, 198.51.100.1')).to.equal('10.1.1.1');
      expect(resolved('10.0.0.5', '10.1.1.1')).to.equal('10.1.1.1');
    });

    it('treats mapped entries as IPv4 for the trusted check and the result', () => {
      // ::ffff:10.2.2.2 is trusted (10.0.0.0/8), so it is skipped.
      expect(resolved('10.0.0.5', '::ffff:203.0.113.7, ::ffff:10.2.2.2')).to.equal('203.0.113.7');
      const result = resolveClientIp('10.0.0.5', '::ffff:203.0.113.7', trusted);
      expect(result.ok && result.ip.family).to.equal(4);
      expect(result.ok && result.ip.w0).to.equal(0xcb007107);
    });

    it('mixes IPv4 and IPv6 entries', () => {
      expect(resolved('10.0.0.5', '2001:db8::9, fd00::1, 10.1.1.1')).to.equal('2001:db8::9');
      expect(resolved('::1', '203.0.113.7, fd00::1')).to.equal('203.0.113.7');
    });

    it('accepts uppercase IPv6 entries and returns canonical text', () => {
      expect(resolved('10.0.0.5', '2001:DB8:0:0:0:0:0:9')).to.equal('2001:db8::9');
    });
  });

  describe('a malformed X-Forwarded-For from a trusted peer', () => {
    const bad = [
      '010.0.0.1',
      '127.1',
      '0x7f.0.0.1',
      '1.2.3',
      '256.0.0.1',
      'unknown',
      '1.2.3.4:80',
      '[::1]',
      '[2001:db8::1]:443',
      'fe80::1%eth0',
      '"203.0.113.7"',
      '203.0.113.7;proto=https',
      'for=203.0.113.7',
    ];

    it('refuses a malformed sole entry, never falling back to the peer', () => {
      for (const entry of bad) {
        expect(refusal('10.0.0.5', entry), entry).to.equal('forwarded_for_malformed');
      }
    });

    // Contract §1 step 1 (changed): entries left of the client are never read.
    it('ignores a malformed entry left of the client, which neither helps nor harms', () => {
      for (const entry of bad) {
        expect(resolved('10.0.0.5', `${entry}, 203.0.113.7`), entry).to.equal('203.0.113.7');
        expect(resolved('10.0.0.5', `${entry}, 203.0.113.7, 10.1.1.1`), entry).to.equal('203.0.113.7');
      }
    });

    it('refuses a malformed entry among the trusted hops walked', () => {
      for (const entry of bad) {
        expect(refusal('10.0.0.5', `203.0.113.7, ${entry}, 10.1.1.1`), entry).to.equal(
          'forwarded_for_malformed',
        );
      }
    });

    it('refuses a malformed entry in the middle or on the right', () => {
      for (const entry of bad) {
        expect(refusal('10.0.0.5', `192.0.2.1, ${entry}, 10.1.1.1`), entry).to.equal(
          'forwarded_for_malformed',
        );
        expect(refusal('10.0.0.5', `192.0.2.1, ${entry}`), entry).to.equal(
          'forwarded_for_malformed',
        );
      }
    });

    it('refuses an empty entry among those walked', () => {
      expect(refusal('10.0.0.5', '192.0.2.1,,10.1.1.1')).to.equal('forwarded_for_malformed');
      expect(refusal('10.0.0.5', '192.0.2.1, , 10.1.1.1')).to.equal('forwarded_for_malformed');
      expect(refusal('10.0.0.5', ',10.1.1.1')).to.equal('forwarded_for_malformed');
      expect(refusal('10.0.0.5', '203.0.113.7,')).to.equal('forwarded_for_malformed');
      expect(refusal('10.0.0.5', ',')).to.equal('forwarded_for_malformed');
      expect(refusal('10.0.0.5', ' , ')).to.equal('forwarded_for_malformed');
    });

    it('ignores an empty entry left of the client', () => {
      expect(resolved('10.0.0.5', '192.0.2.1,,203.0.113.7')).to.equal('203.0.113.7');
      expect(resolved('10.0.0.5', ',203.0.113.7')).to.equal('203.0.113.7');
      expect(resolved('10.0.0.5', ', , 203.0.113.7, 10.1.1.1')).to.equal('203.0.113.7');
    });

    it('refuses whitespace other than spaces and tabs inside the header', () => {
      expect(refusal('10.0.0.5', '203.0.113.7\n')).to.equal('forwarded_for_malformed');
      expect(refusal('10.0.0.5', '192.0.2.1,\u00a0203.0.113.7')).to.equal('forwarded_for_malformed');
    });

    it('refuses an entry with inner whitespace', () => {
      expect(refusal('10.0.0.5', '203.0.113 .7')).to.equal('forwarded_for_malformed');
    });
  });

  describe('the entry cap', () => {
    const chain = (n: number): string =>
      ['203.0.113.7', ...Array.from({ length: n - 1 }, (_, k) => `10.0.${k >> 8}.${k & 255}`)].join(', ');

    it('accepts 64 entries', () => {
      expect(resolved('10.0.0.5', chain(64))).to.equal('203.0.113.7');
    });

    it('refuses more than 64 entries', () => {
      expect(refusal('10.0.0.5', chain(65))).to.equal('forwarded_for_malformed');
      expect(refusal('10.0.0.5', chain(1000))).to.equal('forwarded_for_malformed');
    });

    // Contract §1 step 1 (changed): the cap counts the entries walked, not those left of the client.
    it('does not count entries left of the client', () => {
      const header = [...Array.from({ length: 64 }, () => '10.1.1.1'), '203.0.113.7'].join(',');
      expect(resolved('10.0.0.5', header)).to.equal('203.0.113.7');
      expect(resolved('10.0.0.5', `${Array(1000).fill('unknown').join(',')}, 203.0.113.7, 10.1.1.1`)).to.equal('203.0.113.7');
    });

    it('refuses more than 64 trusted hops, with no single value to blame', () => {
      const header = Array.from({ length: 65 }, () => '10.1.1.1').join(',');
      const result = resolveClientIp('10.0.0.5', header, trusted);
      expect(result).to.deep.equal({ ok: false, reason: 'forwarded_for_malformed' });
      expect(clientOf(resolveClientIp('10.0.0.5', header.slice('10.1.1.1,'.length), trusted))).to.equal('10.1.1.1');
    });
  });

  describe('the refused value, for the log', () => {
    function valueOf(peer: string | undefined, xff: string | undefined): string | undefined {
      const result = resolveClientIp(peer, xff, trusted);
      if (result.ok) throw new Error(`expected a refusal, got ${formatAddress(result.ip)}`);
      return result.value;
    }

    it('is the malformed entry walked, trimmed of spaces and tabs', () => {
      expect(valueOf('10.0.0.5', '203.0.113.7, \t010.0.0.1 , 10.1.1.1')).to.equal('010.0.0.1');
      expect(valueOf('10.0.0.5', 'unknown')).to.equal('unknown');
      expect(valueOf('10.0.0.5', '203.0.113.7, , 10.1.1.1')).to.equal('');
    });

    it('is cut to 128 characters', () => {
      const long = 'x'.repeat(5000);
      expect(valueOf('10.0.0.5', `203.0.113.7, ${long}`)).to.equal('x'.repeat(128));
      expect(valueOf(long, undefined)).to.equal('x'.repeat(128));
    });

    it('is the unparseable peer, and absent when there is no peer', () => {
      expect(valueOf('not-an-ip', undefined)).to.equal('not-an-ip');
      expect(valueOf(undefined, undefined)).to.equal(undefined);
    });
  });
});
