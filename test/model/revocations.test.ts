/**
 * Revoked tokens and tokensIssuedAfter in the whitelist model (contract §10):
 * validated with the rest, grouped per tenant, part of the version, taken
 * over with the tenant's keys when only they change, forgotten once their
 * token has expired, and applied incrementally with the result of a full
 * build.
 */
import { expect } from 'chai';
import { applyChanges, buildSnapshot, type Snapshot } from '../../src/model/snapshot.ts';
import { MAX_REVOCATION_TEXT_LENGTH, MAX_REVOKED_TOKENS } from '../../src/model/limits.ts';
import { PackedTexts, TextPacker } from '../../src/model/packed-tenants.ts';
import { seededRandom as random } from '../bench/lib/fixtures.ts';
import { DEFAULT_PATTERN, OIN, OIN_2, doc, issuesOf, oinOf, oneIssue, tenant } from './helpers.ts';

const options = { oinPattern: DEFAULT_PATTERN };
const NOW = Date.parse('2026-12-01T12:00:00Z');
const LATER = '2026-12-02T00:00:00Z';

function withRevoked(tenants: unknown[], revokedTokens: unknown): Record<string, unknown> {
  return { tenants, revokedTokens };
}

function two(): Record<string, unknown>[] {
  return [tenant(), tenant({ oin: OIN_2, keys: [{ kid: 'other', alg: 'HS256', secret: 'another secret of 32 bytes or more' }] })];
}

describe('revoked tokens in the whitelist', () => {
  it("gives each tenant exactly its own revoked jtis, so the same jti under another tenant is untouched", async () => {
    const snapshot = await buildSnapshot(
      withRevoked(two(), [
        { jti: 'leaked-1', oin: OIN, expiresAt: LATER, reason: 'laptop stolen' },
        { jti: 'leaked-2', oin: OIN },
      ]),
      { ...options, nowMs: NOW },
    );
    expect([...(snapshot.tenants.get(OIN)!.revokedTokens ?? [])].sort()).to.deep.equal(['leaked-1', 'leaked-2']);
    expect(snapshot.tenants.get(OIN_2)!.revokedTokens).to.equal(undefined);
    expect(snapshot.revokedTokens).to.equal(2);
  });

  it('accepts the same jti revoked for two tenants', async () => {
    const snapshot = await buildSnapshot(withRevoked(two(), [{ jti: 'same', oin: OIN }, { jti: 'same', oin: OIN_2 }]), options);
    expect(snapshot.tenants.get(OIN)!.revokedTokens?.has('same')).to.equal(true);
    expect(snapshot.tenants.get(OIN_2)!.revokedTokens?.has('same')).to.equal(true);
    expect(snapshot.revokedTokens).to.equal(2);
  });

  it('changes the version when a token is revoked, and not when the list is reordered or a time is written in another zone', async () => {
    const none = await buildSnapshot(doc(...two()), options);
    const a = await buildSnapshot(withRevoked(two(), [{ jti: 'x', oin: OIN, expiresAt: '2026-12-02T01:00:00+01:00' }, { jti: 'y', oin: OIN_2 }]), options);
    const b = await buildSnapshot(withRevoked(two(), [{ jti: 'y', oin: OIN_2 }, { jti: 'x', oin: OIN, expiresAt: LATER }]), options);
    expect(a.version).to.not.equal(none.version);
    expect(a.version).to.equal(b.version);
    const reason = await buildSnapshot(withRevoked(two(), [{ jti: 'x', oin: OIN, expiresAt: LATER, reason: 'r' }, { jti: 'y', oin: OIN_2 }]), options);
    expect(reason.version).to.not.equal(a.version);
  });

  it('keeps the version of a whitelist without revocations as it was (an empty list is no change)', async () => {
    const plain = await buildSnapshot(doc(...two()), options);
    const empty = await buildSnapshot(withRevoked(two(), []), options);
    expect(empty.version).to.equal(plain.version);
    expect(empty.revokedTokens).to.equal(0);
  });

  it('forgets a revocation whose token expired longer ago than the clock tolerance, and keeps one within it', async () => {
    const list = [
      { jti: 'long-gone', oin: OIN, expiresAt: '2026-12-01T11:00:00Z' },
      { jti: 'just-expired', oin: OIN, expiresAt: '2026-12-01T11:59:50Z' },
      { jti: 'no-expiry', oin: OIN },
    ];
    const snapshot = await buildSnapshot(withRevoked(two(), list), { ...options, nowMs: NOW, clockToleranceMs: 30_000 });
    expect([...(snapshot.tenants.get(OIN)!.revokedTokens ?? [])].sort()).to.deep.equal(['just-expired', 'no-expiry']);
    expect(snapshot.revokedTokens).to.equal(2);
  });

  it('takes over a tenant whose only change is a revocation with its very keys, so cached tokens stay cached', async () => {
    const first = await buildSnapshot(doc(...two()), options);
    const second = await buildSnapshot(withRevoked(two(), [{ jti: 'x', oin: OIN }]), { ...options, previous: first });
    const before = first.tenants.get(OIN)!;
    const after = second.tenants.get(OIN)!;
    expect(after).to.not.equal(before);
    expect(after.keys).to.equal(before.keys);
    expect(after.cidrs).to.equal(before.cidrs);
    expect(after.revokedTokens?.has('x')).to.equal(true);
    expect(second.tenants.get(OIN_2)).to.equal(first.tenants.get(OIN_2));
    // And back: the revocation removed gives the first version again.
    const third = await buildSnapshot(doc(...two()), { ...options, previous: second });
    expect(third.version).to.equal(first.version);
    expect(third.tenants.get(OIN)!.revokedTokens).to.equal(undefined);
    expect(third.tenants.get(OIN)!.keys).to.equal(before.keys);
  });

  it('reads a null reason and a null expiry as none, as the schema allows', async () => {
    const snapshot = await buildSnapshot(withRevoked(two(), [{ jti: 'x', oin: OIN, reason: null, expiresAt: null }]), options);
    expect(snapshot.tenants.get(OIN)!.revokedTokens?.has('x')).to.equal(true);
    expect(snapshot.version).to.equal((await buildSnapshot(withRevoked(two(), [{ jti: 'x', oin: OIN }]), options)).version);
  });

  describe('refuses the whitelist, naming the entry', () => {
    it('for a jti that is not a non-empty string of bounded length', async () => {
      for (const jti of [42, '', 'x'.repeat(MAX_REVOCATION_TEXT_LENGTH + 1), null]) {
        const issue = await oneIssue(withRevoked(two(), [{ jti, oin: OIN }]), 'revokedTokens[0].jti');
        expect(issue.message).to.include('non-empty string');
      }
    });

    it('for an OIN that is not a tenant of the whitelist', async () => {
      const issue = await oneIssue(withRevoked(two(), [{ jti: 'x', oin: '00000009999999999999' }]), 'revokedTokens[0].oin');
      expect(issue.message).to.include('"00000009999999999999"').and.include('not a tenant');
    });

    it('for an OIN that is missing or not a string', async () => {
      for (const entry of [{ jti: 'x' }, { jti: 'x', oin: 42 }, { jti: 'x', oin: null }]) {
        const issue = await oneIssue(withRevoked(two(), [entry]), 'revokedTokens[0].oin');
        expect(issue.message, JSON.stringify(entry)).to.equal('must be a string');
      }
    });

    it('for an OIN that does not match the OIN pattern', async () => {
      const issue = await oneIssue(withRevoked(two(), [{ jti: 'x', oin: 'abc' }]), 'revokedTokens[0].oin');
      expect(issue.message).to.include('OIN pattern');
    });

    it('for the same jti revoked twice for one tenant', async () => {
      const issue = await oneIssue(withRevoked(two(), [{ jti: 'x', oin: OIN }, { jti: 'x', oin: OIN }]), 'revokedTokens[1].jti');
      expect(issue.message).to.include('revoked twice');
    });

    it('for an unknown field, an expiry that is not an ISO date-time with a zone, and a reason that is not text', async () => {
      const issues = await issuesOf(withRevoked(two(), [{ jti: 'x', oin: OIN, expiresAt: '2026-12-01 10:00', reason: 7, token: 'eyJ...' }]));
      expect(issues.map((i) => i.path).sort()).to.deep.equal(['revokedTokens[0]', 'revokedTokens[0].expiresAt', 'revokedTokens[0].reason']);
      expect(issues.find((i) => i.path === 'revokedTokens[0]')?.message).to.equal('unknown field "token"');
    });

    it('for more revoked tokens than the limit, before reading any of them', async () => {
      // A sparse array: its entries would each be refused, but none is read.
      const issue = await oneIssue(withRevoked(two(), new Array(MAX_REVOKED_TOKENS + 1)), 'revokedTokens');
      expect(issue.message).to.include(`at most ${MAX_REVOKED_TOKENS}`);
    });

    it('for more than the limit handed over as texts by the reading thread, before any is parsed', async () => {
      const texts = new TextPacker('revokedTokens');
      // Not one of them JSON: parsing any would throw.
      for (let i = 0; i <= MAX_REVOKED_TOKENS; i++) texts.element(null, '{');
      const issue = await oneIssue(withRevoked(two(), new PackedTexts(texts.fields())), 'revokedTokens');
      expect(issue.message).to.include(`at most ${MAX_REVOKED_TOKENS}`);
    });

    it('for revokedTokens that is not an array, and an entry that is not an object', async () => {
      await oneIssue(withRevoked(two(), { jti: 'x', oin: OIN }), 'revokedTokens');
      await oneIssue(withRevoked(two(), ['x']), 'revokedTokens[0]');
    });
  });

  describe('tokensIssuedAfter', () => {
    it('is read as a time and changes the version', async () => {
      const plain = await buildSnapshot(doc(...two()), options);
      const cut = await buildSnapshot(doc(tenant({ tokensIssuedAfter: '2026-12-01T13:00:00+01:00' }), two()[1]), options);
      expect(cut.tenants.get(OIN)!.tokensIssuedAfter).to.equal(NOW);
      expect(plain.tenants.get(OIN)!.tokensIssuedAfter).to.equal(undefined);
      expect(cut.version).to.not.equal(plain.version);
      const same = await buildSnapshot(doc(tenant({ tokensIssuedAfter: '2026-12-01T12:00:00Z' }), two()[1]), options);
      expect(same.version).to.equal(cut.version);
    });

    it('refuses a value that is not an ISO date-time with a zone', async () => {
      for (const value of ['2026-12-01', 1764590400, 'now']) {
        const issue = await oneIssue(doc(tenant({ tokensIssuedAfter: value })), 'tenants[0].tokensIssuedAfter');
        expect(issue.message).to.include('ISO-8601');
      }
    });
  });

  describe('applied incrementally', () => {
    it("applies a revocation as a change to one tenant, sharing its keys and every other tenant", async () => {
      const first = await buildSnapshot(doc(...two()), options);
      const next = await applyChanges(first, { upserts: [two()[0]], removals: [], revokedTokens: [{ jti: 'x', oin: OIN }] }, options);
      expect(next.tenants.get(OIN)!.revokedTokens?.has('x')).to.equal(true);
      expect(next.tenants.get(OIN)!.keys).to.equal(first.tenants.get(OIN)!.keys);
      expect(next.tenants.get(OIN_2)).to.equal(first.tenants.get(OIN_2));
      expect(next.revokedTokens).to.equal(1);
      const full = await buildSnapshot(withRevoked(two(), [{ jti: 'x', oin: OIN }]), options);
      expect(next.version).to.equal(full.version);
      // The tenant re-read without it: the revocation is gone again.
      const undone = await applyChanges(next, { upserts: [two()[0]], removals: [] }, options);
      expect(undone.version).to.equal(first.version);
      expect(undone.revokedTokens).to.equal(0);
    });

    it('refuses a change whose revocation names a tenant it does not carry, and leaves nothing half-applied', async () => {
      const first = await buildSnapshot(doc(...two()), options);
      let refused: unknown;
      try {
        await applyChanges(first, { upserts: [two()[0]], removals: [], revokedTokens: [{ jti: 'x', oin: OIN_2 }] }, options);
      } catch (error) {
        refused = error;
      }
      expect((refused as { issues?: unknown[] })?.issues).to.deep.equal([
        { path: 'revokedTokens[0].oin', message: `tenant "${OIN_2}" is not among the tenants of this change` },
      ]);
      expect(first.tenants.get(OIN_2)!.revokedTokens).to.equal(undefined);
    });

    it('counts revoked tokens right when tenants holding them are removed', async () => {
      const first = await buildSnapshot(withRevoked(two(), [{ jti: 'x', oin: OIN }, { jti: 'y', oin: OIN }, { jti: 'z', oin: OIN_2 }]), options);
      expect(first.revokedTokens).to.equal(3);
      const next = await applyChanges(first, { upserts: [], removals: [OIN] }, options);
      expect(next.revokedTokens).to.equal(1);
    });

    it('gives the version of a full rebuild after a long random sequence of revocations and tenant changes', async function () {
      this.timeout(60_000);
      const next = random(11);
      const oins = Array.from({ length: 12 }, (_, i) => oinOf(i));
      const tenants = new Map<string, Record<string, unknown>>(oins.map((oin) => [oin, tenant({ oin })]));
      const revoked = new Map<string, Map<string, Record<string, unknown>>>(oins.map((oin) => [oin, new Map()]));
      const entries = (oin: string) => [...(revoked.get(oin)?.values() ?? [])];
      const whole = () => withRevoked([...tenants.values()], oins.filter((o) => tenants.has(o)).flatMap(entries));
      let snapshot: Snapshot = await buildSnapshot(whole(), options);
      for (let step = 0; step < 300; step++) {
        const oin = oins[Math.floor(next() * oins.length)]!;
        const roll = next();
        if (roll < 0.5) {
          const jti = `j${Math.floor(next() * 6)}`;
          const list = revoked.get(oin)!;
          if (list.has(jti)) list.delete(jti);
          else list.set(jti, next() < 0.5 ? { jti, oin } : { jti, oin, expiresAt: LATER, reason: 'r' });
        } else if (roll < 0.6) {
          tenants.set(oin, tenant({ oin, tokensIssuedAfter: next() < 0.5 ? LATER : '2026-01-01T00:00:00Z' }));
        } else if (roll < 0.7) {
          tenants.delete(oin);
        } else {
          tenants.set(oin, tenant({ oin, name: `n${Math.floor(next() * 3)}` }));
        }
        const present = tenants.get(oin);
        const change = present === undefined ? { upserts: [], removals: [oin] } : { upserts: [present], removals: [], revokedTokens: entries(oin) };
        snapshot = await applyChanges(snapshot, change, options);
        if (step % 20 === 0 || step === 299) {
          const full = await buildSnapshot(whole(), options);
          expect(snapshot.version, `step ${step}`).to.equal(full.version);
          expect(snapshot.revokedTokens, `step ${step}`).to.equal(full.revokedTokens);
        }
      }
    });
  });
});
