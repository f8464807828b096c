import { expect } from 'chai';
import { parseAddress } from '../../src/ip/address.ts';
import { WhitelistError } from '../../src/model/errors.ts';
import { keysThatMayDiffer } from '../../src/model/layered-map.ts';
import { applyChanges, buildSnapshot, type Snapshot, type Tenant } from '../../src/model/snapshot.ts';
import { seededRandom as random } from '../bench/lib/fixtures.ts';
import { DEFAULT_PATTERN, OIN, OIN_2, SECRET, doc, oinOf, streamedDocument, tenant } from './helpers.ts';

const options = { oinPattern: DEFAULT_PATTERN };

const RANGES = ['10.0.0.0/24', '10.0.1.0/24', '10.0.0.0/16', '192.0.2.0/28', '2001:db8::/48', '2001:db8:1::/64', '198.51.100.7/32'];
const PROBES = ['10.0.0.5', '10.0.1.9', '10.0.200.1', '192.0.2.3', '192.0.2.200', '2001:db8::1', '2001:db8:1::5', '198.51.100.7', '8.8.8.8'].map(
  (text) => parseAddress(text)!,
);

function randomTenant(next: () => number, oin: string): Record<string, unknown> {
  const cidrs = RANGES.filter(() => next() < 0.3);
  const keys = [{ kid: `k${Math.floor(next() * 3)}`, alg: 'HS256', secret: `${SECRET}${Math.floor(next() * 3)}` }];
  return { oin, name: `tenant ${Math.floor(next() * 4)}`, enabled: next() < 0.8, cidrs, keys };
}

/** What the gate decides from a tenant: everything but key objects, compared by value. */
function facts(t: Tenant): unknown {
  return {
    name: t.name,
    enabled: t.enabled,
    cidrs: [...t.cidrTexts].sort(),
    keys: t.keys.list.map((k) => `${k.kid}/${k.alg}/${k.enabled}`).sort(),
    revoked: [...(t.revokedTokens ?? [])].sort(),
    contains: PROBES.map((ip) => t.cidrs.contains(ip)),
  };
}

function expectSameDecisions(incremental: Snapshot, full: Snapshot): void {
  expect(incremental.version).to.equal(full.version);
  expect([...incremental.tenants.keys()].sort()).to.deep.equal([...full.tenants.keys()].sort());
  for (const [oin, t] of full.tenants) expect(facts(incremental.tenants.get(oin)!), oin).to.deep.equal(facts(t));
  for (const ip of PROBES) {
    // covers is a pre-filter: it may say yes after a removal, never no where a full build says yes.
    if (full.covers(ip)) expect(incremental.covers(ip)).to.equal(true);
  }
}

describe('applyChanges', () => {
  it('gives the version and decisions of a full rebuild after a long random sequence of changes', async function () {
    this.timeout(120_000);
    const next = random(20261201);
    const oins = Array.from({ length: 40 }, (_, i) => oinOf(i));
    const state = new Map<string, Record<string, unknown>>();
    for (const oin of oins.slice(0, 20)) state.set(oin, randomTenant(next, oin));
    let snapshot = await buildSnapshot(doc(...state.values()), options);
    for (let step = 0; step < 700; step++) {
      const upserts: Record<string, unknown>[] = [];
      const removals: string[] = [];
      const count = 1 + Math.floor(next() * 3);
      const touched = new Set<string>();
      for (let i = 0; i < count; i++) {
        const oin = oins[Math.floor(next() * oins.length)]!;
        if (touched.has(oin)) continue;
        touched.add(oin);
        if (next() < 0.3) {
          removals.push(oin); // may not exist: ignored
          state.delete(oin);
        } else {
          const t = randomTenant(next, oin);
          upserts.push(t);
          state.set(oin, t);
        }
      }
      const before = snapshot;
      snapshot = await applyChanges(snapshot, { upserts, removals }, options);
      for (const [oin, t] of before.tenants) if (!touched.has(oin)) expect(snapshot.tenants.get(oin)).to.equal(t);
      if (step % 25 === 0 || step === 699) expectSameDecisions(snapshot, await buildSnapshot(doc(...state.values()), options));
    }
  });

  it('stays equal to a full rebuild once thousands of distinct tenants have changed', async function () {
    this.timeout(120_000);
    const next = random(77);
    const state = new Map<string, Record<string, unknown>>();
    for (let i = 0; i < 3000; i++) state.set(oinOf(i), randomTenant(next, oinOf(i)));
    let snapshot = await buildSnapshot(doc(...state.values()), options);
    for (let batch = 0; batch < 30; batch++) {
      const upserts: Record<string, unknown>[] = [];
      const removals: string[] = [];
      for (let i = batch * 100; i < batch * 100 + 100; i++) {
        const oin = oinOf(i);
        if (i % 7 === 0) {
          removals.push(oin);
          state.delete(oin);
        } else {
          const t = randomTenant(next, oin);
          upserts.push(t);
          state.set(oin, t);
        }
      }
      snapshot = await applyChanges(snapshot, { upserts, removals }, options);
      expect(snapshot.tenants.size).to.equal(state.size);
    }
    expectSameDecisions(snapshot, await buildSnapshot(doc(...state.values()), options));
    expect([...snapshot.tenants.values()].map((t) => t.oin).sort()).to.deep.equal([...state.keys()].sort());
  });

  it('keeps the same version when a change restores the content', async () => {
    const first = await buildSnapshot(doc(tenant(), tenant({ oin: OIN_2 })), options);
    const changed = await applyChanges(first, { upserts: [tenant({ cidrs: ['10.9.0.0/16'] })], removals: [OIN_2] }, options);
    expect(changed.version).to.not.equal(first.version);
    const back = await applyChanges(changed, { upserts: [tenant(), tenant({ oin: OIN_2 })], removals: [] }, options);
    expect(back.version).to.equal(first.version);
  });

  it('keeps the tenant object of an upsert whose content did not change', async () => {
    const first = await buildSnapshot(doc(tenant()), options);
    const next = await applyChanges(first, { upserts: [tenant()], removals: [] }, options);
    expect(next.tenants.get(OIN)).to.equal(first.tenants.get(OIN));
    expect(next.version).to.equal(first.version);
  });

  it('refuses the whole change on one bad upsert, naming its place as buildSnapshot does', async () => {
    const first = await buildSnapshot(doc(tenant()), options);
    const change = { upserts: [tenant({ oin: OIN_2 }), tenant({ cidrs: ['10.0.0.1/8'] })], removals: [] };
    let refused: unknown;
    await applyChanges(first, change, options).catch((error: unknown) => (refused = error));
    expect(refused).to.be.instanceOf(WhitelistError);
    expect((refused as WhitelistError).issues.map((i) => i.path)).to.deep.equal(['tenants[1].cidrs[0]']);
    // The current snapshot is untouched.
    expect([...first.tenants.keys()]).to.deep.equal([OIN]);
  });

  it('refuses a change set upserting one OIN twice', async () => {
    const first = await buildSnapshot(doc(tenant()), options);
    const refused = await applyChanges(first, { upserts: [tenant({ oin: OIN_2 }), tenant({ oin: OIN_2 })], removals: [] }, options).then(
      () => undefined,
      (error: unknown) => error as WhitelistError,
    );
    expect(refused?.issues).to.deep.equal([{ path: 'tenants[1].oin', message: `duplicate OIN "${OIN_2}"` }]);
  });

  it('ignores the removal of an OIN that is not there, keeping version and tenants', async () => {
    const first = await buildSnapshot(doc(tenant()), options);
    const next = await applyChanges(first, { upserts: [], removals: [OIN_2] }, options);
    expect(next.version).to.equal(first.version);
    expect([...next.tenants.keys()]).to.deep.equal([OIN]);
    expect(next.tenants.get(OIN)).to.equal(first.tenants.get(OIN));
    expect(next.tenants.has(OIN_2)).to.equal(false);
  });

  it('keeps a tenant both removed and upserted in one change set, with the upserted content', async () => {
    const first = await buildSnapshot(doc(tenant()), options);
    const next = await applyChanges(first, { upserts: [tenant({ name: 'renamed' })], removals: [OIN] }, options);
    expect(next.tenants.get(OIN)?.name).to.equal('renamed');
    expect(next.version).to.equal((await buildSnapshot(doc(tenant({ name: 'renamed' })), options)).version);
  });

  for (const [title, upsert, path] of [
    ['a null upsert', null, 'tenants[0]'],
    ['an upsert that is an array', [tenant()], 'tenants[0]'],
    ['a null name', tenant({ name: null }), 'tenants[0].name'],
    ['a null enabled', tenant({ enabled: null }), 'tenants[0].enabled'],
    ['a null cidrs', tenant({ cidrs: null }), 'tenants[0].cidrs'],
    ['a null jwksUri', tenant({ jwksUri: null }), 'tenants[0].jwksUri'],
    ['an undefined issuer', tenant({ issuer: undefined }), 'tenants[0].issuer'],
    ['an undefined enabled', tenant({ enabled: undefined }), 'tenants[0].enabled'],
  ] as const) {
    it(`refuses ${title} and leaves the current snapshot as it was`, async () => {
      const first = await buildSnapshot(doc(tenant()), options);
      const refused = await applyChanges(first, { upserts: [upsert], removals: [OIN] }, options).then(
        () => undefined,
        (error: unknown) => error as WhitelistError,
      );
      expect(refused).to.be.instanceOf(WhitelistError);
      expect(refused!.issues.map((i) => i.path)).to.deep.equal([path]);
      expect(first.tenants.get(OIN)?.name).to.equal('Gemeente Voorbeeld');
    });
  }

  it('covers an added tenant at once and still refuses addresses no tenant lists', async () => {
    const first = await buildSnapshot(doc(tenant({ cidrs: ['203.0.113.0/24'] })), options);
    const next = await applyChanges(first, { upserts: [tenant({ oin: OIN_2, cidrs: ['198.51.100.0/24'] })], removals: [] }, options);
    expect(next.covers(parseAddress('198.51.100.9')!)).to.equal(true);
    expect(next.covers(parseAddress('203.0.113.9')!)).to.equal(true);
    expect(next.covers(parseAddress('192.0.2.1')!)).to.equal(false);
  });
});

describe('buildSnapshot with the previous snapshot', () => {
  it('takes over tenants whose document did not change and rebuilds the others', async () => {
    const first = await buildSnapshot(doc(tenant(), tenant({ oin: OIN_2 })), options);
    const next = await buildSnapshot(doc(tenant(), tenant({ oin: OIN_2, name: 'renamed' })), { ...options, previous: first });
    expect(next.tenants.get(OIN)).to.equal(first.tenants.get(OIN));
    expect(next.tenants.get(OIN_2)).to.not.equal(first.tenants.get(OIN_2));
    expect(next.version).to.equal((await buildSnapshot(doc(tenant(), tenant({ oin: OIN_2, name: 'renamed' })), options)).version);
  });

  it('gives the version and decisions of a fresh build after a long random sequence of whole documents', async function () {
    this.timeout(120_000);
    const next = random(4242);
    const oins = Array.from({ length: 60 }, (_, i) => oinOf(i));
    const state = new Map<string, Record<string, unknown>>();
    for (const oin of oins.slice(0, 30)) state.set(oin, randomTenant(next, oin));
    const documentOf = (): Record<string, unknown> => {
      const tenants = [...state.values()];
      // Order is not content: shuffled now and then.
      if (next() < 0.3) tenants.reverse();
      const revokedTokens = tenants.filter(() => next() < 0.1).map((t, i) => ({ jti: `jti-${i % 3}`, oin: t['oin'] }));
      return { tenants, revokedTokens };
    };
    let snapshot = await buildSnapshot(documentOf(), options);
    for (let step = 0; step < 300; step++) {
      const touched = new Set<string>();
      const count = Math.floor(next() * 4);
      for (let i = 0; i < count; i++) {
        const oin = oins[Math.floor(next() * oins.length)]!;
        touched.add(oin);
        if (next() < 0.3) state.delete(oin);
        else state.set(oin, randomTenant(next, oin));
      }
      const document = documentOf();
      const before = snapshot;
      snapshot = await buildSnapshot(document, { ...options, previous: before });
      const fresh = await buildSnapshot(document, options);
      expectSameDecisions(snapshot, fresh);
      expect(snapshot.revokedTokens).to.equal(fresh.revokedTokens);
      // The same document with its tenants arriving while they are built (revocations last), over the same snapshot.
      const streamed = await buildSnapshot(streamedDocument(document as { tenants: unknown[] }, 1 + Math.floor(next() * 7)), { ...options, previous: before });
      expectSameDecisions(streamed, fresh);
      expect(streamed.revokedTokens).to.equal(fresh.revokedTokens);
      for (const [oin, t] of before.tenants) {
        const now = snapshot.tenants.get(oin);
        // An untouched tenant whose revocations stayed is the very object the caches know.
        if (!touched.has(oin) && now && (now.revokedTokens?.size ?? 0) === 0 && (t.revokedTokens?.size ?? 0) === 0) {
          expect(now).to.equal(t);
          expect(streamed.tenants.get(oin)).to.equal(t);
        }
      }
    }
  });

  it('keeps the key object of a secret that did not change when its tenant is built again, and makes one for a new secret', async () => {
    const other = 'another secret of at least 32 bytes';
    const keys = (a: string, b: string) => [
      { kid: 'a', alg: 'HS256', secret: a },
      { kid: 'b', alg: 'HS512', secret: b },
    ];
    const first = await buildSnapshot(doc(tenant({ keys: keys(SECRET, other) })), options);
    // Renamed: the tenant is built again; key a keeps its secret, key b's secret is now a's.
    const next = await buildSnapshot(doc(tenant({ name: 'renamed', keys: keys(SECRET, SECRET) })), { ...options, previous: first });
    const before = first.tenants.get(OIN)!.keys.byKid;
    const after = next.tenants.get(OIN)!;
    expect(after).to.not.equal(first.tenants.get(OIN));
    expect(after.keys.byKid.get('a')!.key).to.equal(before.get('a')!.key);
    expect(after.keys.byKid.get('b')!.key).to.not.equal(before.get('b')!.key);
    expect(after.keys.byKid.get('b')!.key.equals(before.get('a')!.key)).to.equal(true);
    expect(after.keys.byKid.get('b')!.alg).to.equal('HS512');
    // The same as building from scratch.
    expect(next.version).to.equal((await buildSnapshot(doc(tenant({ name: 'renamed', keys: keys(SECRET, SECRET) })), options)).version);
  });

  it('shares the tenants map with the snapshot it was built over: only changed and removed tenants differ', async () => {
    const many = Array.from({ length: 200 }, (_, i) => tenant({ oin: oinOf(i) }));
    const first = await buildSnapshot(doc(...many), options);
    const changed = many.map((t, i) => (i === 7 ? { ...t, name: 'renamed' } : t)).filter((_, i) => i !== 9);
    const next = await buildSnapshot(doc(...changed, tenant({ oin: oinOf(500) })), { ...options, previous: first });
    expect([...(keysThatMayDiffer(first.tenants, next.tenants) ?? ['not shared'])].sort()).to.deep.equal([oinOf(7), oinOf(500), oinOf(9)].sort());
    expect(next.tenants.size).to.equal(200);
    expect(next.tenants.has(oinOf(9))).to.equal(false);
    expect(next.tenants.get(oinOf(7))!.name).to.equal('renamed');
    expect(next.version).to.equal((await buildSnapshot(doc(...changed, tenant({ oin: oinOf(500) })), options)).version);
  });

  it('refuses a document over the previous snapshot with the issues a fresh build gives', async () => {
    const first = await buildSnapshot(doc(tenant(), tenant({ oin: OIN_2 })), options);
    const bad = {
      tenants: [tenant(), tenant({ oin: OIN_2, cidrs: ['10.0.0.0/33'] }), tenant()],
      revokedTokens: [{ jti: 'x', oin: oinOf(900) }],
    };
    const issuesOf = (promise: Promise<Snapshot>) =>
      promise.then(
        () => [] as unknown[],
        (error: unknown) => (error as WhitelistError).issues,
      );
    const over = await issuesOf(buildSnapshot(bad, { ...options, previous: first }));
    expect(over).to.have.length(3);
    expect(over).to.deep.equal(await issuesOf(buildSnapshot(bad, options)));
  });

  it('never takes over a tenant for a document JSON cannot tell apart from it', async () => {
    const first = await buildSnapshot(doc(tenant()), options);
    // JSON.stringify would drop the undefined issuer; validation refuses it.
    const refused = await buildSnapshot(doc({ ...tenant(), issuer: undefined }), { ...options, previous: first }).then(
      () => undefined,
      (error: unknown) => error as WhitelistError,
    );
    expect(refused?.issues.map((i) => i.path)).to.deep.equal(['tenants[0].issuer']);
  });
});
