import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { parseStrictJson } from '../../src/json/strict-json.ts';
import { doc, build, issuesOf, oneIssue, OIN, OIN_2, SECRET, tenant } from './helpers.ts';

const OTHER_SECRET = 'another secret of at least 32 bytes!!';

function withKey(key: Record<string, unknown>): Record<string, unknown> {
  return doc(tenant({ keys: [key] }));
}

function pem(key: import('node:crypto').KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }) as string;
}

const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
const RSA_PUBLIC = pem(rsa2048.publicKey);
const RSA_PRIVATE = rsa2048.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

describe('buildSnapshot', () => {
  describe('accepts', () => {
    it("loads the contract's example file shape, with an HS and an RS key", async () => {
      const document = {
        $schema: './whitelist.schema.json',
        tenants: [
          tenant({
            keys: [
              { kid: 'gv-2026', alg: 'HS256', secret: SECRET },
              { kid: 'gv-rsa', alg: 'RS256', publicKey: RSA_PUBLIC },
            ],
          }),
        ],
      };
      const snapshot = await build(document);
      expect(snapshot.tenants.size).to.equal(1);
      const loaded = snapshot.tenants.get(OIN);
      expect(loaded).to.not.equal(undefined);
      expect(loaded?.name).to.equal('Gemeente Voorbeeld');
      expect(loaded?.enabled).to.equal(true);
      expect([...(loaded?.cidrTexts ?? [])]).to.deep.equal(['203.0.113.0/24', '2001:db8:1::/48']);
      expect(loaded?.keys.list.map((k) => [k.kid, k.alg])).to.deep.equal([
        ['gv-2026', 'HS256'],
        ['gv-rsa', 'RS256'],
      ]);
      expect(loaded?.keys.byKid.get('gv-rsa')?.key.type).to.equal('public');
      expect(loaded?.keys.byKid.get('gv-2026')?.key.type).to.equal('secret');
      expect(loaded?.jwksUri).to.equal(undefined);
      expect(snapshot.version).to.match(/^[0-9a-f]{16}$/);
      expect(snapshot.loadedAt).to.be.instanceOf(Date);
    });

    it('accepts an empty tenant list, a tenant with only a jwksUri, and a loopback http jwksUri', async () => {
      expect((await build(doc())).tenants.size).to.equal(0);
      const snapshot = await build(
        doc(
          { oin: OIN, cidrs: ['203.0.113.0/24'], jwksUri: 'https://idp.example/jwks' },
          tenant({ oin: OIN_2, keys: [], jwksUri: 'http://127.0.0.1:8000/jwks' }),
        ),
      );
      expect(snapshot.tenants.get(OIN)?.jwksUri).to.equal('https://idp.example/jwks');
      expect(snapshot.tenants.get(OIN_2)?.jwksUri).to.equal('http://127.0.0.1:8000/jwks');
    });

    it('accepts a 32-byte HS secret (the minimum)', async () => {
      const secret = 'x'.repeat(32);
      const snapshot = await build(withKey({ kid: 'k', alg: 'HS256', secret }));
      expect(snapshot.tenants.get(OIN)?.keys.byKid.get('k')?.key.export().toString()).to.equal(secret);
    });

    it("carries a key's enabled: false and its notBefore/expiresAt into the TenantKey as epoch ms", async () => {
      const snapshot = await build(
        withKey({
          kid: 'k',
          alg: 'HS256',
          secret: SECRET,
          enabled: false,
          notBefore: '2026-01-01T00:00:00Z',
          expiresAt: '2026-12-01T01:00:00+01:00',
        }),
      );
      const key = snapshot.tenants.get(OIN)?.keys.byKid.get('k');
      expect(key?.enabled).to.equal(false);
      expect(key?.notBefore).to.equal(Date.UTC(2026, 0, 1));
      expect(key?.expiresAt).to.equal(Date.UTC(2026, 11, 1));
      const plain = (await build(withKey({ kid: 'k', alg: 'HS256', secret: SECRET }))).tenants.get(OIN)?.keys.byKid.get('k');
      expect(plain?.enabled).to.equal(true);
      expect(plain?.notBefore).to.equal(undefined);
      expect(plain?.expiresAt).to.equal(undefined);
    });

    it('applies a custom OIN pattern to tenants', async () => {
      const letters = /^[A-Z]{3}$/u;
      const snapshot = await build(doc(tenant({ oin: 'ABC' })), letters);
      expect([...snapshot.tenants.keys()]).to.deep.equal(['ABC']);
      const issue = await oneIssue(doc(tenant({ oin: OIN })), 'tenants[0].oin', letters);
      expect(issue.message).to.include(OIN).and.include('^[A-Z]{3}$');
    });
  });

  describe('refuses the document', () => {
    it('refuses a document that is not an object', async () => {
      for (const document of [null, [], 'tenants', 42]) {
        const issue = await oneIssue(document, '$');
        expect(issue.message).to.include('object').and.include('tenants');
      }
    });

    it('refuses tenants that is not an array', async () => {
      for (const document of [{}, { tenants: {} }, { tenants: 'x' }]) {
        const issue = await oneIssue(document, 'tenants');
        expect(issue.message).to.include('array');
      }
    });

    it('refuses an unknown top-level field, naming it, and allows $schema', async () => {
      const issue = await oneIssue({ $schema: 'x', tenants: [], tennants: [] }, '$');
      expect(issue.message).to.include('unknown field').and.include('"tennants"');
    });

    it('refuses an unknown tenant field, naming it', async () => {
      const issue = await oneIssue(doc(tenant({ cidr: ['10.0.0.0/8'] })), 'tenants[0]');
      expect(issue.message).to.include('unknown field').and.include('"cidr"');
    });

    it('refuses an unknown key field, naming it', async () => {
      const issue = await oneIssue(withKey({ kid: 'k', alg: 'HS256', secret: SECRET, expires: 'soon' }), 'tenants[0].keys[0]');
      expect(issue.message).to.include('unknown field').and.include('"expires"');
    });

    it('refuses a tenant that is not an object', async () => {
      const issue = await oneIssue(doc('00000001234567890000'), 'tenants[0]');
      expect(issue.message).to.include('object');
    });
  });

  describe('refuses a bad OIN', () => {
    it('refuses an OIN that is not a string', async () => {
      for (const oin of [12345678901234567890, null, ['00000001234567890000']]) {
        const issue = await oneIssue(doc(tenant({ oin })), 'tenants[0].oin');
        expect(issue.message).to.include('string');
      }
      await oneIssue(doc({ name: 'x', cidrs: [] }), 'tenants[0].oin');
    });

    it('refuses an OIN not matching the pattern, naming the OIN and the pattern', async () => {
      for (const oin of ['1234', '0000000123456789000x', ` ${OIN}`, `${OIN}\n`]) {
        const issue = await oneIssue(doc(tenant({ oin })), 'tenants[0].oin');
        expect(issue.message).to.include(oin).and.include('^[0-9]{20}$');
      }
    });

    it('refuses a duplicate OIN, at the second occurrence', async () => {
      const issue = await oneIssue(doc(tenant(), tenant({ oin: OIN_2 }), tenant({ name: 'again' })), 'tenants[2].oin');
      expect(issue.message).to.include('duplicate').and.include(OIN);
    });

    it('refuses a tenant name or enabled of the wrong type', async () => {
      await oneIssue(doc(tenant({ name: 5 })), 'tenants[0].name');
      await oneIssue(doc(tenant({ enabled: 'yes' })), 'tenants[0].enabled');
    });
  });

  describe('refuses bad CIDRs', () => {
    it('refuses cidrs that is not an array (or missing)', async () => {
      const issue = await oneIssue(doc(tenant({ cidrs: '203.0.113.0/24' })), 'tenants[0].cidrs');
      expect(issue.message).to.include('array');
      await oneIssue(doc(tenant({ cidrs: undefined })), 'tenants[0].cidrs');
    });

    it('refuses a CIDR that is not a string', async () => {
      await oneIssue(doc(tenant({ cidrs: ['203.0.113.0/24', 167772160] })), 'tenants[0].cidrs[1]');
    });

    for (const bad of ['garbage', '203.0.113.0', '203.0.113.0/33', '203.0.113.0/024', 'fe80::1%eth0/64', '2001:db8::/129']) {
      it(`refuses the bad CIDR ${JSON.stringify(bad)}, naming it`, async () => {
        const issue = await oneIssue(doc(tenant({ cidrs: ['198.51.100.0/24', bad] })), 'tenants[0].cidrs[1]');
        expect(issue.message).to.include(JSON.stringify(bad));
      });
    }

    it('refuses a non-canonical CIDR (010.0.0.0/8)', async () => {
      const issue = await oneIssue(doc(tenant({ cidrs: ['010.0.0.0/8'] })), 'tenants[0].cidrs[0]');
      expect(issue.message).to.include('010.0.0.0/8').and.include('canonical');
    });

    it('refuses a CIDR with host bits set (203.0.113.5/24), suggesting the network', async () => {
      const issue = await oneIssue(doc(tenant({ cidrs: ['203.0.113.5/24'] })), 'tenants[0].cidrs[0]');
      expect(issue.message).to.include('203.0.113.5/24').and.include('host bits').and.include('203.0.113.0/24');
      const v6 = await oneIssue(doc(tenant({ cidrs: ['2001:db8::1/32'] })), 'tenants[0].cidrs[0]');
      expect(v6.message).to.include('2001:db8::1/32').and.include('host bits');
    });

    it('refuses a /0 range for IPv4 and for IPv6', async () => {
      for (const range of ['0.0.0.0/0', '::/0']) {
        const issue = await oneIssue(doc(tenant({ cidrs: ['203.0.113.0/24', range] })), 'tenants[0].cidrs[1]');
        expect(issue.message).to.include(range).and.include('/0');
      }
    });

    it('refuses a duplicate CIDR, at the second occurrence', async () => {
      const issue = await oneIssue(doc(tenant({ cidrs: ['203.0.113.0/24', '198.51.100.0/24', '203.0.113.0/24'] })), 'tenants[0].cidrs[2]');
      expect(issue.message).to.include('duplicate').and.include('203.0.113.0/24');
    });

    it('refuses an IPv4-mapped IPv6 range, pointing to the IPv4 form', async () => {
      const issue = await oneIssue(doc(tenant({ cidrs: ['::ffff:203.0.113.0/120'] })), 'tenants[0].cidrs[0]');
      expect(issue.message).to.include('::ffff:203.0.113.0/120').and.include('IPv4-mapped').and.include('203.0.113.0/24');
      await oneIssue(doc(tenant({ cidrs: ['::ffff:0:0/96'] })), 'tenants[0].cidrs[0]');
    });
  });

  describe('refuses bad keys', () => {
    it('refuses keys that is not an array, and a key that is not an object', async () => {
      await oneIssue(doc(tenant({ keys: { kid: 'k' } })), 'tenants[0].keys');
      await oneIssue(doc(tenant({ keys: ['k'] })), 'tenants[0].keys[0]');
    });

    it('refuses a key without kid', async () => {
      const issue = await oneIssue(withKey({ alg: 'HS256', secret: SECRET }), 'tenants[0].keys[0].kid');
      expect(issue.message).to.include('non-empty string');
    });

    it('refuses an empty kid, and a kid over 256 characters', async () => {
      await oneIssue(withKey({ kid: '', alg: 'HS256', secret: SECRET }), 'tenants[0].keys[0].kid');
      await oneIssue(withKey({ kid: 'k'.repeat(257), alg: 'HS256', secret: SECRET }), 'tenants[0].keys[0].kid');
      await build(withKey({ kid: 'k'.repeat(256), alg: 'HS256', secret: SECRET }));
    });

    it('refuses a duplicate kid within a tenant, at the second occurrence, naming it', async () => {
      const document = doc(
        tenant({
          keys: [
            { kid: 'same', alg: 'HS256', secret: SECRET },
            { kid: 'other', alg: 'HS256', secret: SECRET },
            { kid: 'same', alg: 'HS512', secret: OTHER_SECRET },
          ],
        }),
      );
      const issue = await oneIssue(document, 'tenants[0].keys[2].kid');
      expect(issue.message).to.include('duplicate').and.include('"same"');
    });

    it('allows the same kid in two different tenants', async () => {
      const snapshot = await build(doc(tenant(), tenant({ oin: OIN_2 })));
      expect(snapshot.tenants.get(OIN_2)?.keys.byKid.has('gv-2026')).to.equal(true);
    });

    for (const alg of ['none', 'HS1', 'hs256', 'EdDSA']) {
      it(`refuses alg ${JSON.stringify(alg)}, naming it`, async () => {
        const issue = await oneIssue(withKey({ kid: 'k', alg, secret: SECRET }), 'tenants[0].keys[0].alg');
        expect(issue.message).to.include(`"${alg}"`).and.include('HS256');
      });
    }

    it('refuses an HS key without a secret', async () => {
      const issue = await oneIssue(withKey({ kid: 'k', alg: 'HS384' }), 'tenants[0].keys[0].secret');
      expect(issue.message).to.include('HS384').and.include('secret');
    });

    it('refuses an HS secret of 31 bytes, counting UTF-8 bytes', async () => {
      const issue = await oneIssue(withKey({ kid: 'k', alg: 'HS256', secret: 'y'.repeat(31) }), 'tenants[0].keys[0]');
      expect(issue.message).to.include('"k"').and.include('31 bytes').and.include('32');
      // 16 two-byte characters are 32 bytes; 15 plus one ASCII are 31.
      await build(withKey({ kid: 'k', alg: 'HS256', secret: 'é'.repeat(16) }));
      await oneIssue(withKey({ kid: 'k', alg: 'HS256', secret: 'é'.repeat(15) + 'x' }), 'tenants[0].keys[0]');
    });

    it('refuses an HS key with a publicKey', async () => {
      const issue = await oneIssue(withKey({ kid: 'k', alg: 'HS256', secret: SECRET, publicKey: RSA_PUBLIC }), 'tenants[0].keys[0].publicKey');
      expect(issue.message).to.include('HS256').and.include('secret');
    });

    it('refuses an RS key with a secret', async () => {
      const issue = await oneIssue(withKey({ kid: 'k', alg: 'RS256', secret: SECRET, publicKey: RSA_PUBLIC }), 'tenants[0].keys[0].secret');
      expect(issue.message).to.include('RS256').and.include('publicKey');
    });

    it('refuses an RS key without a publicKey', async () => {
      await oneIssue(withKey({ kid: 'k', alg: 'RS256' }), 'tenants[0].keys[0].publicKey');
    });

    it('refuses an RS key with garbage PEM', async () => {
      const garbage = '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n';
      const issue = await oneIssue(withKey({ kid: 'rsa', alg: 'RS256', publicKey: garbage }), 'tenants[0].keys[0]');
      expect(issue.message).to.include('"rsa"').and.include('PEM');
      const notPem = await oneIssue(withKey({ kid: 'rsa', alg: 'RS256', publicKey: 'hello' }), 'tenants[0].keys[0]');
      expect(notPem.message).to.include('"rsa"').and.include('PEM');
    });

    it('refuses an RS key given as a private key PEM, without echoing it', async () => {
      const issue = await oneIssue(withKey({ kid: 'rsa', alg: 'RS256', publicKey: RSA_PRIVATE }), 'tenants[0].keys[0]');
      expect(issue.message).to.include('private key');
      const body = RSA_PRIVATE.split('\n')[1] as string;
      expect(issue.message).to.not.include(body.slice(0, 20));
    });

    it('refuses an RSA key of 1024 bits', async () => {
      const issue = await oneIssue(withKey({ kid: 'small', alg: 'RS256', publicKey: pem(rsa1024.publicKey) }), 'tenants[0].keys[0]');
      expect(issue.message).to.include('"small"').and.include('1024').and.include('2048');
    });

    it('refuses an EC key whose curve does not fit the alg', async () => {
      const issue = await oneIssue(withKey({ kid: 'ec', alg: 'ES256', publicKey: pem(p384.publicKey) }), 'tenants[0].keys[0]');
      expect(issue.message).to.include('"ec"').and.include('prime256v1').and.include('secp384r1');
      const accepted = await build(withKey({ kid: 'ec', alg: 'ES384', publicKey: pem(p384.publicKey) }));
      expect(accepted.tenants.get(OIN)?.keys.byKid.get('ec')?.alg).to.equal('ES384');
    });

    it('refuses an enabled that is not a boolean', async () => {
      await oneIssue(withKey({ kid: 'k', alg: 'HS256', secret: SECRET, enabled: 'false' }), 'tenants[0].keys[0].enabled');
    });

    for (const [field, value] of [
      ['notBefore', 'next tuesday'],
      ['notBefore', '2026-01-01'],
      ['expiresAt', '2026-06-01T00:00:00'],
      ['expiresAt', '2026-13-01T00:00:00Z'],
      ['expiresAt', 1767225600000],
    ] as const) {
      it(`refuses ${field} ${JSON.stringify(value)} (not an ISO date-time with a zone), naming it`, async () => {
        const issue = await oneIssue(withKey({ kid: 'k', alg: 'HS256', secret: SECRET, [field]: value }), `tenants[0].keys[0].${field}`);
        expect(issue.message).to.include('ISO-8601').and.include(String(value));
      });
    }

    it('refuses expiresAt before (or equal to) notBefore', async () => {
      for (const expiresAt of ['2025-12-31T23:59:59Z', '2026-01-01T00:00:00Z']) {
        const issue = await oneIssue(
          withKey({ kid: 'k', alg: 'HS256', secret: SECRET, notBefore: '2026-01-01T00:00:00Z', expiresAt }),
          'tenants[0].keys[0].expiresAt',
        );
        expect(issue.message).to.include('notBefore');
      }
    });
  });

  describe('refuses a bad jwksUri', () => {
    it('refuses plain http to a non-loopback host, naming the URL', async () => {
      for (const uri of ['http://idp.example/jwks', 'http://10.0.0.1/jwks', 'http://127.example/jwks']) {
        const issue = await oneIssue(doc(tenant({ jwksUri: uri })), 'tenants[0].jwksUri');
        expect(issue.message).to.include(uri).and.include('https');
      }
    });

    it('refuses a jwksUri with credentials, without echoing the password', async () => {
      const issue = await oneIssue(doc(tenant({ jwksUri: 'https://user:hunter2pass@idp.example/jwks' })), 'tenants[0].jwksUri');
      expect(issue.message).to.include('credentials');
      expect(issue.message).to.not.include('hunter2pass');
      const both = await issuesOf(doc(tenant({ jwksUri: 'http://user:hunter2pass@idp.example/jwks' })));
      expect(both.every((i) => i.path === 'tenants[0].jwksUri')).to.equal(true);
      expect(both.map((i) => i.message).join(' ')).to.include('credentials').and.include('https');
      expect(JSON.stringify(both)).to.not.include('hunter2pass');
      const malformed = await oneIssue(doc(tenant({ jwksUri: 'https://user:hunter2pass@idp.example:99999/jwks' })), 'tenants[0].jwksUri');
      expect(malformed.message).to.include('not a valid URL').and.not.include('hunter2pass');
      // A password with a slash defeats naive masking; the value is not echoed at all.
      const slashed = await oneIssue(doc(tenant({ jwksUri: 'https://user:se/cret@idp.example/jwks' })), 'tenants[0].jwksUri');
      expect(slashed.message).to.not.include('cret');
    });

    it('refuses a jwksUri that is not a URL or not a string', async () => {
      const issue = await oneIssue(doc(tenant({ jwksUri: 'not a url' })), 'tenants[0].jwksUri');
      expect(issue.message).to.equal('is not a valid URL');
      await oneIssue(doc(tenant({ jwksUri: 42 })), 'tenants[0].jwksUri');
    });
  });

  describe('reporting', () => {
    it('reports every problem in a document, not only the first', async () => {
      const document = {
        extra: true,
        tenants: [
          tenant({ oin: OIN_2 }),
          tenant({ cidrs: ['203.0.113.5/24', '0.0.0.0/0'], keys: [{ kid: 'a', alg: 'none', secret: SECRET }] }),
          tenant({ oin: 'abc', cidrs: ['010.0.0.0/8'] }),
          tenant({ oin: '00000001234567890008', keys: [{ kid: 'b', alg: 'HS256', secret: 'short' }, { kid: 'c', alg: 'HS256', secret: SECRET }, { kid: 'c', alg: 'HS256', secret: SECRET }] }),
          tenant({ oin: OIN_2 }),
          tenant({ oin: '00000001234567890009', jwksUri: 'http://idp.example/jwks', bogus: 1 }),
        ],
      };
      const issues = await issuesOf(document);
      const paths = issues.map((issue) => issue.path);
      expect(paths).to.include.members([
        '$',
        'tenants[1].cidrs[0]',
        'tenants[1].cidrs[1]',
        'tenants[1].keys[0].alg',
        'tenants[2].oin',
        'tenants[2].cidrs[0]',
        'tenants[3].keys[0]',
        'tenants[3].keys[2].kid',
        'tenants[4].oin',
        'tenants[5].jwksUri',
        'tenants[5]',
      ]);
      expect(issues.length).to.be.at.least(11);
      let error: unknown;
      try {
        await build(document);
      } catch (caught) {
        error = caught;
      }
      expect((error as Error).message).to.include(`(and ${issues.length - 1} more)`);
    });

    it('never puts a secret into an error message', async () => {
      const secrets = ['short-secret-1', 'secret-with-publickey-0123456789abcdef', 'rs-key-secret-0123456789abcdefghij', 'misnamed-secret-0123456789abcdefgh', 'pw-in-uri-xyz'];
      const document = doc(
        tenant({
          keys: [
            { kid: 'k1', alg: 'HS256', secret: secrets[0] },
            { kid: 'k2', alg: 'HS256', secret: secrets[1], publicKey: RSA_PUBLIC },
            { kid: 'k3', alg: 'RS256', secret: secrets[2], publicKey: RSA_PUBLIC },
            { kid: 'k4', alg: 'HS256', secrett: secrets[3] },
            { kid: 'k5', alg: 'none', secret: secrets[1] },
            { kid: 'k6', alg: 'HS256', secret: secrets[1], notBefore: 'bad' },
          ],
          jwksUri: `http://op:${secrets[4]}@idp.example/jwks`,
        }),
      );
      const issues = await issuesOf(document);
      expect(issues.length).to.be.at.least(6);
      let message = '';
      try {
        await build(document);
      } catch (error) {
        message = (error as Error).message;
      }
      const text = JSON.stringify(issues) + message;
      for (const secret of secrets) expect(text).to.not.include(secret);
    });

    it('refuses a __proto__ tenant field as an unknown field and pollutes nothing', async () => {
      const text = JSON.stringify(doc(tenant())).replace('"oin":', '"__proto__":{"polluted":"yes","enabled":false},"oin":');
      const parsed = parseStrictJson(text);
      const issue = await oneIssue(parsed, 'tenants[0]');
      expect(issue.message).to.include('unknown field').and.include('"__proto__"');
      const viaJsonParse = await oneIssue(JSON.parse(text), 'tenants[0]');
      expect(viaJsonParse.message).to.include('"__proto__"');
      expect(({} as Record<string, unknown>)['polluted']).to.equal(undefined);
      expect((Object.prototype as Record<string, unknown>)['enabled']).to.equal(undefined);
    });
  });

  describe('version', () => {
    function base(): Record<string, unknown> {
      return {
        tenants: [
          tenant({
            cidrs: ['203.0.113.0/24', '2001:db8:1::/48', '198.51.100.0/24'],
            keys: [
              { kid: 'a', alg: 'HS256', secret: SECRET, expiresAt: '2027-01-01T00:00:00Z' },
              { kid: 'b', alg: 'HS512', secret: OTHER_SECRET },
              { kid: 'c', alg: 'RS256', publicKey: RSA_PUBLIC },
            ],
          }),
          tenant({ oin: OIN_2, name: 'Tweede', cidrs: ['192.0.2.0/24'], keys: [{ kid: 'z', alg: 'HS256', secret: OTHER_SECRET }] }),
        ],
      };
    }
    type Doc = { tenants: Array<Record<string, unknown> & { cidrs: string[]; keys: Array<Record<string, unknown>> }> };
    const mutate = async (change: (d: Doc) => void): Promise<string> => {
      const d = base() as unknown as Doc;
      change(d);
      return (await build(d)).version;
    };
    let reference: string;
    before(async () => {
      reference = (await build(base())).version;
    });

    it('is a digest that is the same for the same document built twice', async () => {
      expect(reference).to.match(/^[0-9a-f]{16}$/);
      expect((await build(base())).version).to.equal(reference);
    });

    it('is stable across tenant order, CIDR order, key order and whitespace', async () => {
      expect(await mutate((d) => d.tenants.reverse())).to.equal(reference);
      expect(await mutate((d) => d.tenants[0]?.cidrs.reverse())).to.equal(reference);
      expect(await mutate((d) => d.tenants[0]?.keys.reverse())).to.equal(reference);
      const compact = parseStrictJson(JSON.stringify(base()));
      const spaced = parseStrictJson(JSON.stringify(base(), null, 4).replace(/\n/g, '\r\n\t'));
      expect((await build(compact)).version).to.equal(reference);
      expect((await build(spaced)).version).to.equal(reference);
    });

    it('changes when any enforced fact changes', async () => {
      const variants: Record<string, (d: Doc) => void> = {
        'a CIDR': (d) => {
          d.tenants[1]!.cidrs = ['192.0.3.0/24'];
        },
        'an added CIDR': (d) => {
          d.tenants[1]!.cidrs.push('10.0.0.0/8');
        },
        'a secret': (d) => {
          d.tenants[0]!.keys[1]!['secret'] = OTHER_SECRET + '!';
        },
        "a key's enabled": (d) => {
          d.tenants[0]!.keys[0]!['enabled'] = false;
        },
        "a tenant's enabled": (d) => {
          d.tenants[1]!['enabled'] = false;
        },
        "a key's expiresAt": (d) => {
          d.tenants[0]!.keys[0]!['expiresAt'] = '2027-01-01T00:00:01Z';
        },
        "a key's notBefore": (d) => {
          d.tenants[0]!.keys[1]!['notBefore'] = '2026-01-01T00:00:00Z';
        },
        'a name': (d) => {
          d.tenants[1]!['name'] = 'Tweede!';
        },
        'an alg': (d) => {
          d.tenants[0]!.keys[1]!['alg'] = 'HS384';
        },
        'a kid': (d) => {
          d.tenants[0]!.keys[1]!['kid'] = 'b2';
        },
        'a public key': (d) => {
          d.tenants[0]!.keys[2]!['publicKey'] = pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
        },
        'a jwksUri': (d) => {
          d.tenants[1]!['jwksUri'] = 'https://idp.example/jwks';
        },
        'a removed tenant': (d) => {
          d.tenants.pop();
        },
      };
      const seen = new Map<string, string>([[reference, 'reference']]);
      for (const [what, change] of Object.entries(variants)) {
        const version = await mutate(change);
        expect(version, `changing ${what}`).to.not.equal(reference);
        expect(seen.get(version), `changing ${what} gives the version of ${seen.get(version)}`).to.equal(undefined);
        seen.set(version, what);
      }
    });
  });
});
