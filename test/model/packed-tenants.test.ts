import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { digestOfDocument } from '../../src/model/document-digest.ts';
import { buffersOf, PackedTenants, StreamedTenants, TenantPacker, tenantList, type PackedTenantFields } from '../../src/model/packed-tenants.ts';
import { buildSnapshot, type Snapshot } from '../../src/model/snapshot.ts';
import { parseStrictJson } from '../../src/json/strict-json.ts';
import { WhitelistError } from '../../src/model/errors.ts';
import { MAX_TENANTS, tooManyTenants } from '../../src/model/limits.ts';
import { DEFAULT_PATTERN, oinOf, streamedDocument, tenant } from './helpers.ts';

const options = { oinPattern: DEFAULT_PATTERN };

/** Tenants as written, including what a rewrite of the parsed value as JSON text would not carry back. */
const ODD_TEXTS = [
  '{"oin":"00000001234567890000","name":"caf\\u00e9 \\u20ac \\ud83d\\ude00","cidrs":["203.0.113.0/24"]}',
  '{"oin":"00000001234567890001","rateLimit":{"perSecond":-0}}',
  '{"oin":"00000001234567890002","rateLimit":{"perSecond":1e400}}',
  '{"oin":"00000001234567890003","__proto__":{"polluted":true}}',
  '{"oin":"a\\ud800","name":"lone surrogate in the OIN"}',
  '{"oin":5}',
  '{ "name" : "no OIN" }',
  '"a string"', '7', 'null', '[1, 2]',
  '{"oin":"00000001234567890004","deep":[[[[[[[[[[1]]]]]]]]]]}',
  '{"1":"integer-like key first","oin":"00000001234567890005"}',
];
const ODD_FILE = `{"tenants": [\n  ${ODD_TEXTS.join(',\n  ')}\n]}`;
const ODD = (parseStrictJson(ODD_FILE) as { tenants: unknown[] }).tenants;

/** The fields as another thread gets them: cloned, the buffers moved. */
function handedOver(fields: PackedTenantFields): PackedTenantFields {
  return structuredClone(fields, { transfer: buffersOf(fields) });
}

/** The tenants of a whitelist file's text, packed as the reading thread packs them. */
function packedFile(text: string): PackedTenants {
  const packer = new TenantPacker();
  const document = parseStrictJson(text, { elements: packer }) as { tenants: unknown[] };
  expect(document.tenants.every((t) => t === null), 'tenants dropped from the parsed document').to.equal(true);
  return new PackedTenants(handedOver(packer.fields()));
}

/** Tenants that count the documents parsed from them. */
function counting<T extends PackedTenants | StreamedTenants>(tenants: T): T & { parsed: number } {
  const counted = tenants as T & { parsed: number };
  counted.parsed = 0;
  const document = tenants.document.bind(tenants);
  counted.document = (index: number) => {
    counted.parsed++;
    return document(index);
  };
  return counted;
}

/** Tenants written as JSON.stringify writes them, packed. */
function packed(list: readonly unknown[]): PackedTenants {
  return packedFile(JSON.stringify({ tenants: list }));
}

describe('packed tenants', () => {
  it('give back every tenant exactly as parsed (-0, an infinite number and a __proto__ key included)', () => {
    const tenants = packedFile(ODD_FILE);
    expect(tenants.length).to.equal(ODD.length);
    for (let i = 0; i < ODD.length; i++) {
      const document = tenants.document(i);
      expect(document, `tenant ${i}`).to.deep.equal(ODD[i]);
      expect(JSON.stringify(document)).to.equal(JSON.stringify(ODD[i]));
    }
    expect(Object.is((tenants.document(1) as { rateLimit: { perSecond: number } }).rateLimit.perSecond, -0)).to.equal(true);
    expect((tenants.document(2) as { rateLimit: { perSecond: number } }).rateLimit.perSecond).to.equal(Infinity);
    const proto = tenants.document(3) as Record<string, unknown>;
    expect(Object.getPrototypeOf(proto)).to.equal(Object.prototype);
    expect(Object.keys(proto)).to.deep.equal(['oin', '__proto__']);
  });

  it('digest each tenant’s text as written: the digestOfDocument of one written as JSON.stringify writes it', () => {
    const tenants = packedFile(ODD_FILE);
    for (let i = 0; i < ODD.length; i++) {
      expect(tenants.digest(i), `digest of tenant ${i}`).to.equal(createHash('sha256').update(ODD_TEXTS[i]!, 'utf8').digest('base64'));
    }
    // Written otherwise (whitespace, an escape), the same tenant has another digest: it is built again, never mistaken.
    expect(tenants.digest(6)).to.not.equal(digestOfDocument(ODD[6]));
    const compact = packed([ODD[0], ODD[6], ODD[12]]);
    expect([0, 1, 2].map((i) => compact.digest(i))).to.deep.equal([ODD[0], ODD[6], ODD[12]].map((t) => digestOfDocument(t)));
  });

  it('name a tenant by its OIN only when it is an object whose "oin" is a string UTF-8 carries exactly', () => {
    const tenants = packedFile(ODD_FILE);
    const oins = Array.from({ length: tenants.length }, (_, i) => tenants.oin(i));
    expect(oins).to.deep.equal([
      '00000001234567890000',
      '00000001234567890001',
      '00000001234567890002',
      '00000001234567890003',
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      '00000001234567890004',
      '00000001234567890005',
    ]);
    // An empty OIN is never valid: named like no OIN, so never taken over.
    expect(packedFile('{"tenants":[{"oin":""},{"oin":"x"}]}').oin(0)).to.equal(undefined);
    expect(packedFile('{"tenants":[{"oin":""},{"oin":"x"}]}').oin(1)).to.equal('x');
  });

  it('are read by buildSnapshot like the parsed array: the same version, or the same issues in the same places', async () => {
    const good = Array.from({ length: 50 }, (_, i) => tenant({ oin: oinOf(i), name: `tenant ${i}` }));
    const fromArray = await buildSnapshot({ $schema: 'x', tenants: good }, options);
    const fromPacked = await buildSnapshot({ $schema: 'x', tenants: packed(good) }, options);
    expect(fromPacked.version).to.equal(fromArray.version);
    expect([...fromPacked.tenants.keys()]).to.deep.equal([...fromArray.tenants.keys()]);

    const badTexts = [...good.slice(0, 3).map((t) => JSON.stringify(t)), ...ODD_TEXTS, JSON.stringify(tenant({ oin: oinOf(1) }))];
    const badFile = `{"tenants":[${badTexts.join(',')}]}`;
    const bad = (parseStrictJson(badFile) as { tenants: unknown[] }).tenants;
    const refusal = async (tenants: unknown): Promise<string> =>
      buildSnapshot({ tenants, other: 1 }, options).then(
        () => 'accepted',
        (error: Error & { issues?: unknown }) => JSON.stringify(error.issues ?? error.message),
      );
    const issues = await refusal(bad);
    expect(issues).to.include('tenants[4].rateLimit').and.include('duplicate OIN');
    expect(await refusal(packedFile(badFile))).to.equal(issues);
  });

  it('let a rebuild take every unchanged tenant over from the previous snapshot, and build only the changed one', async () => {
    const list = Array.from({ length: 20 }, (_, i) => tenant({ oin: oinOf(i) }));
    const first: Snapshot = await buildSnapshot({ tenants: packed(list) }, options);
    const changed = list.map((t, i) => (i === 7 ? { ...t, name: 'renamed' } : t));
    const next = await buildSnapshot({ tenants: packed(changed) }, { ...options, previous: first });
    const fromArray = await buildSnapshot({ tenants: changed }, options);
    expect(next.version).to.equal(fromArray.version);
    for (let i = 0; i < list.length; i++) {
      const same = next.tenants.get(oinOf(i)) === first.tenants.get(oinOf(i));
      expect(same, `tenant ${i} taken over`).to.equal(i !== 7);
    }
  });

  it('let a reformatted tenant be kept, and taken over from then on without being parsed', async () => {
    const list = Array.from({ length: 5 }, (_, i) => tenant({ oin: oinOf(i) }));
    const compact = `{"tenants":[${list.map((t) => JSON.stringify(t)).join(',')}]}`;
    const pretty = JSON.stringify({ tenants: list }, null, 2);
    const first = await buildSnapshot({ tenants: packedFile(compact) }, options);
    // Written otherwise: every tenant is built again, found equal, and the enforced one kept.
    const reformatted = counting(packedFile(pretty));
    const second = await buildSnapshot({ tenants: reformatted }, { ...options, previous: first });
    expect(reformatted.parsed).to.equal(5);
    expect(second.version).to.equal(first.version);
    for (let i = 0; i < 5; i++) expect(second.tenants.get(oinOf(i))).to.equal(first.tenants.get(oinOf(i)));
    // The same text again: taken over by its digest, none parsed.
    const again = counting(packedFile(pretty));
    const third = await buildSnapshot({ tenants: again }, { ...options, previous: second });
    expect(again.parsed).to.equal(0);
    for (let i = 0; i < 5; i++) expect(third.tenants.get(oinOf(i))).to.equal(first.tenants.get(oinOf(i)));
  });

  it('arriving past MAX_TENANTS are refused as a list known to be that long is, without building on them', async function () {
    this.timeout(60_000);
    // Not one of them a tenant: had the walk built on them, their issues would be listed too.
    const document = streamedDocument({ $schema: 'x', extra: 1, tenants: new Array(MAX_TENANTS + 1).fill(7) }, 200_000);
    const tenants = counting(document.tenants);
    const refused = await buildSnapshot(document, options).then(
      () => [],
      (error: WhitelistError) => error.issues,
    );
    expect(refused).to.deep.equal([{ path: '$', message: 'unknown field "extra"' }, tooManyTenants(MAX_TENANTS + 1)]);
    // The walk stopped once the list had grown past the limit, not after all of it.
    expect(tenants.parsed).to.be.lessThan(MAX_TENANTS / 2);
  });

  it('are told apart from a parsed array, and anything else is no list of tenants', () => {
    expect(tenantList([1, 2])?.length).to.equal(2);
    expect(tenantList(packed([1, 2, 3]))?.length).to.equal(3);
    for (const value of [undefined, null, {}, 'tenants', { length: 1 }]) expect(tenantList(value)).to.equal(undefined);
  });
});
