/**
 * Tenants validated on the thread that parsed them: a build from what that
 * thread prepared enforces exactly what a build from the documents does
 * (every field, every key, every range), refuses with the same issues in
 * the same places, and uses a preparation only under the rules it was made
 * under (under others the build fails). A prepared text no preparation gives
 * fails the build.
 */
import { expect } from 'chai';
import { generateKeyPairSync } from 'node:crypto';
import { parseAddress } from '../../src/ip/address.ts';
import { WhitelistError } from '../../src/model/errors.ts';
import { buffersOf, PackedTenants, StreamedTenants, TenantPacker, type PackedTenantFields, type TenantPreparation } from '../../src/model/packed-tenants.ts';
import { decodePrepared } from '../../src/model/prepared.ts';
import { buildSnapshot, preparationKey, preparedText, type Snapshot, type SnapshotOptions, type Tenant } from '../../src/model/snapshot.ts';
import { parseStrictJson } from '../../src/json/strict-json.ts';
import { DEFAULT_PATTERN, oinOf, SECRET, tenant } from './helpers.ts';

const rules: SnapshotOptions = { oinPattern: DEFAULT_PATTERN, certificatesConfigured: true };
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;

/** Tenants using every field the build reads, in the forms an operator may write them. */
const RICH: Record<string, unknown>[] = [
  tenant({ oin: oinOf(0) }),
  tenant({ oin: oinOf(1), name: 'caf\u00e9 \u20ac \ud83d\ude00', enabled: false, cidrs: ['2001:DB8:0:0::/64', '192.0.2.128/25', '2001:db8::8:800:200c:417a/128'] }),
  tenant({
    oin: oinOf(2),
    keys: [
      { kid: 'a', alg: 'HS512', secret: SECRET + SECRET, enabled: false, notBefore: '2026-01-01T00:00:00Z', expiresAt: '2027-01-01T00:00:00.500Z' },
      { kid: 'b', alg: 'RS256', publicKey: rsa },
      { kid: 'c', alg: 'ES256', publicKey: p256, expiresAt: '2030-06-01T12:00:00Z' },
    ],
    issuer: 'https://issuer.example',
    audience: 'oingate',
    rateLimit: { perSecond: 5, burst: 20 },
    tokensIssuedAfter: '2026-03-01T00:00:00Z',
  }),
  tenant({ oin: oinOf(3), keys: [], jwksUri: 'https://keys.example/jwks.json', rateLimit: { perSecond: 7 } }),
  tenant({ oin: oinOf(4), authentication: 'certificate', keys: [], cidrs: [] }),
  tenant({ oin: oinOf(5), authentication: 'certificate+token', name: '', audience: 'only an audience' }),
  { oin: oinOf(6), cidrs: ['10.0.0.0/8'] },
];

/** Tenants refused in every way the build tells apart, and one OIN twice. */
const BAD: unknown[] = [
  tenant({ oin: oinOf(10), cidrs: ['10.0.0.1/8', '010.0.0.0/8', 'fe80::1%eth0/64'] }),
  tenant({ oin: oinOf(11), keys: [{ kid: 'k', alg: 'HS256', secret: 'short' }, { kid: 'k', alg: 'none' }] }),
  tenant({ oin: 'not an OIN', extra: true }),
  tenant({ oin: oinOf(12), keys: [{ kid: 'p', alg: 'RS256', publicKey: '-----BEGIN PRIVATE KEY-----\n' }] }),
  tenant({ oin: oinOf(13), rateLimit: { perSecond: 0 }, tokensIssuedAfter: 'yesterday', authentication: 'password' }),
  tenant({ oin: oinOf(14), jwksUri: 'http://user:pw@keys.example/' }),
  'a string',
  tenant({ oin: oinOf(0) }),
  tenant({ oin: oinOf(0), name: 'twice' }),
];

/** The fields as another thread gets them: cloned, the buffers moved. */
function handedOver(fields: PackedTenantFields): PackedTenantFields {
  return structuredClone(fields, { transfer: buffersOf(fields) });
}

function preparation(options: SnapshotOptions): TenantPreparation {
  return { key: preparationKey(options), text: (value, index) => preparedText(value, index, options) };
}

/** Tenants as the reading thread packs them, validated there under `options` (or by `prepare`). */
function prepared(tenants: readonly unknown[], prepare: TenantPreparation = preparation(rules)): PackedTenants {
  const packer = new TenantPacker(undefined, Infinity, prepare);
  parseStrictJson(JSON.stringify({ tenants }), { elements: packer });
  return new PackedTenants(handedOver(packer.fields()));
}

/** Everything a request is decided on, of one tenant. */
function enforced(t: Tenant): unknown {
  const probes = ['192.0.2.130', '192.0.2.1', '203.0.113.9', '2001:db8::1', '2001:db8:1::5', '2001:db8::8:800:200c:417a', '10.1.2.3'];
  return {
    oin: t.oin,
    name: t.name,
    enabled: t.enabled,
    cidrTexts: t.cidrTexts,
    size: t.cidrs.size,
    contains: probes.map((p) => t.cidrs.contains(parseAddress(p)!)),
    keys: t.keys.list.map((k) => ({
      kid: k.kid,
      alg: k.alg,
      enabled: k.enabled,
      notBefore: k.notBefore,
      expiresAt: k.expiresAt,
      type: k.key.type,
      material: k.key.type === 'secret' ? k.key.export().toString('base64') : k.key.export({ type: 'spki', format: 'pem' }),
      found: t.keys.byKid.get(k.kid) === k,
    })),
    jwksUri: t.jwksUri,
    issuer: t.issuer,
    audience: t.audience,
    rateLimit: t.rateLimit,
    tokensIssuedAfter: t.tokensIssuedAfter,
    authentication: t.authentication,
    own: Object.keys(t),
  };
}

function everything(snapshot: Snapshot): unknown {
  // By OIN: a map's order is not what a snapshot enforces.
  const tenants = [...snapshot.tenants.values()].sort((a, b) => (a.oin < b.oin ? -1 : a.oin > b.oin ? 1 : 0));
  return { version: snapshot.version, tenants: tenants.map(enforced) };
}

async function refusal(document: unknown, options: SnapshotOptions): Promise<unknown> {
  try {
    await buildSnapshot(document, options);
  } catch (error) {
    expect(error).to.be.instanceOf(WhitelistError);
    return (error as WhitelistError).issues;
  }
  throw new Error('expected a refusal');
}

describe('tenants prepared by the parsing thread', () => {
  it('build into exactly the tenants their documents build into: every field, key and range, and the version', async () => {
    const list = prepared(RICH);
    for (let index = 0; index < RICH.length; index++) expect(list.prepared(index, preparationKey(rules)), `tenant ${index}`).to.be.a('string');
    const fromDocuments = await buildSnapshot({ tenants: RICH }, rules);
    const fromPrepared = await buildSnapshot({ tenants: list }, rules);
    expect(everything(fromPrepared)).to.deep.equal(everything(fromDocuments));
  });

  it('refuse with the issues the documents give, in the same places and order, a duplicate OIN included', async () => {
    const tenants = [...RICH, ...BAD];
    const main = await refusal({ tenants }, rules);
    expect(main).to.have.length.greaterThan(12);
    expect(await refusal({ tenants: prepared(tenants) }, rules)).to.deep.equal(main);
  });

  it('are used only under the rules they were validated under: under others the build fails, enforcing none of them', async () => {
    // Prepared where certificates can come, built where none can: nothing prepared is taken for validated.
    const withoutCertificates = { ...rules, certificatesConfigured: false };
    let failed: unknown;
    await buildSnapshot({ tenants: prepared(RICH) }, withoutCertificates).catch((error: unknown) => (failed = error));
    expect(failed).to.be.instanceOf(TypeError);
    expect((failed as Error).message).to.match(/validated only, under other rules/);
    // Prepared under a pattern that refuses every OIN: not taken for a refusal under rules that take them either.
    const strict = { ...rules, oinPattern: /^x$/u };
    const list = prepared(RICH, preparation(strict));
    expect(decodePrepared(list.prepared(0, preparationKey(strict))!)).to.have.property('issues');
    expect(list.prepared(0, preparationKey(rules))).to.equal(undefined);
    failed = undefined;
    await buildSnapshot({ tenants: list }, rules).catch((error: unknown) => (failed = error));
    expect(failed).to.be.instanceOf(TypeError);
  });

  it('build a tenant from its document when its preparation failed', async () => {
    const failing: TenantPreparation = {
      key: preparationKey(rules),
      text: (value, index) => {
        if (index === 2) throw new Error('a fault on the parsing thread');
        return preparedText(value, index, rules);
      },
    };
    const list = prepared(RICH, failing);
    expect(list.prepared(2, preparationKey(rules))).to.equal(undefined);
    expect(everything(await buildSnapshot({ tenants: list }, rules))).to.deep.equal(everything(await buildSnapshot({ tenants: RICH }, rules)));
  });

  it('rebuilt over a previous snapshot, leave every unchanged tenant the one enforced', async () => {
    const previous = await buildSnapshot({ tenants: RICH }, rules);
    const rebuilt = await buildSnapshot({ tenants: prepared(RICH) }, { ...rules, previous });
    expect(rebuilt.version).to.equal(previous.version);
    for (const [oin, t] of previous.tenants) expect(rebuilt.tenants.get(oin), oin).to.equal(t);
  });

  it('are refused when they do not match the tenants they came with, one per tenant', () => {
    const packer = new TenantPacker(undefined, Infinity, preparation(rules));
    parseStrictJson(JSON.stringify({ tenants: RICH }), { elements: packer });
    const fields = packer.fields();
    const other = new TenantPacker(undefined, Infinity, preparation(rules));
    parseStrictJson(JSON.stringify({ tenants: RICH.slice(1) }), { elements: other });
    expect(() => new PackedTenants({ ...fields, prepared: other.fields().prepared! })).to.throw(TypeError, /do not match/);
  });

  it('build a tenant whose OIN cannot cross as text, with revocations, as its document builds', async () => {
    // Only an OIN pattern that lets any text through takes a lone surrogate; such a tenant is never taken over by its OIN.
    const anything = { ...rules, oinPattern: /^[^]{1,40}$/u, clockToleranceMs: 0 };
    const lone = tenant({ oin: 'x\ud800' });
    const document = { tenants: [tenant({ oin: oinOf(0) }), lone], revokedTokens: [{ jti: 'j', oin: oinOf(0) }] };
    const packer = new TenantPacker(undefined, Infinity, preparation(anything));
    parseStrictJson(JSON.stringify({ tenants: document.tenants }), { elements: packer });
    // Arriving as from the reading thread: the revocations, read after the tenants, are applied by a second walk.
    const list = new StreamedTenants();
    list.add(handedOver(packer.fields()));
    list.finish({ tenants: null, revokedTokens: document.revokedTokens });
    expect(list.oin(1)).to.equal(undefined);
    const fromPrepared = await buildSnapshot({ tenants: list }, anything);
    expect(everything(fromPrepared)).to.deep.equal(everything(await buildSnapshot(document, anything)));
  });

  it('fail the build on a prepared text no preparation gives, enforcing nothing of it', async () => {
    const good = JSON.parse(preparedText(RICH[0], 0, rules)) as unknown[];
    const cidrs = good[5] as unknown[];
    const variants: unknown[] = [
      { not: 'an array' },
      [0, ...good.slice(1, 12)],
      [2, ...good.slice(1)],
      [1, []],
      [1, ['path']],
      Object.assign([...good], { 5: [...cidrs.slice(0, 2), 0, ...cidrs.slice(3)] }), // prefix 0
      Object.assign([...good], { 5: [cidrs[0], 5, ...cidrs.slice(2)] }), // family 5
      Object.assign([...good], { 5: [cidrs[0], 4, 24, (cidrs[3] as number) + 1, 0, 0, 0] }), // host bits set
      Object.assign([...good], { 5: [cidrs[0], 4, 24, -1, 0, 0, 0] }),
      Object.assign([...good], { 6: ['k', 'none', true, null, null, SECRET] }),
      Object.assign([...good], { 10: [5] }),
      Object.assign([...good], { 12: 7 }),
      Object.assign([...good], { 2: 12345 }),
    ];
    for (const variant of variants) {
      const text = JSON.stringify(variant);
      expect(() => decodePrepared(text), text).to.throw(TypeError, /malformed prepared tenant|not the parts of a parsed CIDR/);
      const list = prepared([RICH[0]], { key: preparationKey(rules), text: () => text });
      let failed: unknown;
      await buildSnapshot({ tenants: list }, rules).catch((error: unknown) => (failed = error));
      expect(failed, text).to.be.instanceOf(TypeError);
    }
  });
});
