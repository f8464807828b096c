import { expect } from 'chai';
import { applyChanges, buildSnapshot, type Snapshot } from '../../src/model/snapshot.ts';
import { MAX_LISTED_ITEMS, MAX_LISTED_TENANTS, whitelistChanges } from '../../src/store/changes.ts';

const OIN = /^[0-9]{20}$/u;
const SECRET = 'changes-test-secret-0123456789abcdefghij';
const OTHER_SECRET = 'changes-test-other-secret-0123456789abcd';

function oin(n: number): string {
  return `000000030000${String(n).padStart(8, '0')}`;
}

type Key = Record<string, unknown>;
function tenant(n: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { oin: oin(n), name: `T${n}`, cidrs: ['192.0.2.0/24'], keys: [{ kid: 'k1', alg: 'HS256', secret: SECRET } as Key], ...extra };
}

function snapshot(tenants: Record<string, unknown>[]): Promise<Snapshot> {
  return buildSnapshot({ tenants }, { oinPattern: OIN });
}

describe('whitelistChanges', () => {
  it('reports nothing for two loads of the same whitelist', async () => {
    const changes = await whitelistChanges(await snapshot([tenant(1)]), await snapshot([tenant(1)]));
    expect(changes).to.deep.equal({ tenantsAdded: 0, tenantsRemoved: 0, tenantsChanged: 0, tenants: [], moreTenants: 0 });
  });

  it('names added and removed tenants with their ranges and kids', async () => {
    const changes = await whitelistChanges(await snapshot([tenant(1)]), await snapshot([tenant(2)]));
    expect(changes).to.include({ tenantsAdded: 1, tenantsRemoved: 1, tenantsChanged: 0, moreTenants: 0 });
    expect(changes.tenants).to.deep.equal([
      { oin: oin(2), change: 'added', enabled: true, cidrsAdded: { items: ['192.0.2.0/24'], more: 0 }, kidsAdded: { items: ['k1'], more: 0 } },
      { oin: oin(1), change: 'removed', enabled: true, cidrsRemoved: { items: ['192.0.2.0/24'], more: 0 }, kidsRemoved: { items: ['k1'], more: 0 } },
    ]);
  });

  it('names the jtis a reload revoked and no longer revokes, and a new tokensIssuedAfter, by tenant', async () => {
    const first = await buildSnapshot({ tenants: [tenant(1), tenant(2)], revokedTokens: [{ jti: 'old', oin: oin(1) }] }, { oinPattern: OIN });
    const next = await buildSnapshot(
      { tenants: [tenant(1), tenant(2, { tokensIssuedAfter: '2026-12-01T00:00:00Z' })], revokedTokens: [{ jti: 'new', oin: oin(1) }] },
      { oinPattern: OIN, previous: first },
    );
    const changes = await whitelistChanges(first, next);
    expect(changes).to.include({ tenantsAdded: 0, tenantsRemoved: 0, tenantsChanged: 2 });
    expect(changes.tenants).to.deep.include({ oin: oin(1), change: 'changed', jtisRevoked: { items: ['new'], more: 0 }, jtisNoLongerRevoked: { items: ['old'], more: 0 } });
    expect(changes.tenants).to.deep.include({ oin: oin(2), change: 'changed', fields: ['tokensIssuedAfter'] });
  });

  it('treats the first load as every tenant added', async () => {
    const changes = await whitelistChanges(undefined, await snapshot([tenant(1), tenant(2)]));
    expect(changes).to.include({ tenantsAdded: 2, tenantsRemoved: 0, tenantsChanged: 0 });
  });

  it('tells a disabled tenant, ranges added and removed, and kids added, removed, with a new window or new material', async () => {
    const before = await snapshot([
      tenant(1, {
        cidrs: ['192.0.2.0/24', '198.51.100.0/24'],
        keys: [
          { kid: 'same', alg: 'HS256', secret: SECRET },
          { kid: 'window', alg: 'HS256', secret: SECRET },
          { kid: 'rekeyed', alg: 'HS256', secret: SECRET },
          { kid: 'gone', alg: 'HS256', secret: SECRET },
        ],
      }),
    ]);
    const after = await snapshot([
      tenant(1, {
        enabled: false,
        name: 'Renamed',
        cidrs: ['192.0.2.0/24', '203.0.113.0/24'],
        keys: [
          { kid: 'same', alg: 'HS256', secret: SECRET },
          { kid: 'window', alg: 'HS256', secret: SECRET, expiresAt: '2030-01-01T00:00:00Z' },
          { kid: 'rekeyed', alg: 'HS256', secret: OTHER_SECRET },
          { kid: 'new', alg: 'HS256', secret: SECRET },
        ],
      }),
    ]);
    const changes = await whitelistChanges(before, after);
    expect(changes).to.include({ tenantsAdded: 0, tenantsRemoved: 0, tenantsChanged: 1 });
    expect(changes.tenants).to.deep.equal([
      {
        oin: oin(1),
        change: 'changed',
        enabled: false,
        cidrsAdded: { items: ['203.0.113.0/24'], more: 0 },
        cidrsRemoved: { items: ['198.51.100.0/24'], more: 0 },
        kidsAdded: { items: ['new'], more: 0 },
        kidsRemoved: { items: ['gone'], more: 0 },
        kidsNewWindow: { items: ['window'], more: 0 },
        kidsReplaced: { items: ['rekeyed'], more: 0 },
        fields: ['name'],
      },
    ]);
  });

  it('names a changed authentication as a changed field', async () => {
    const changes = await whitelistChanges(await snapshot([tenant(1)]), await snapshot([tenant(1, { authentication: 'certificate+token' })]));
    expect(changes.tenants).to.deep.equal([{ oin: oin(1), change: 'changed', fields: ['authentication'] }]);
  });

  it('never carries a secret', async () => {
    const before = await snapshot([tenant(1)]);
    const after = await snapshot([tenant(1, { keys: [{ kid: 'k1', alg: 'HS256', secret: OTHER_SECRET }] }), tenant(2)]);
    const text = JSON.stringify(await whitelistChanges(before, after));
    expect(text).to.include('kidsReplaced');
    expect(text).not.to.include(SECRET).and.not.to.include(OTHER_SECRET);
  });

  it('stays bounded for a whitelist replaced wholesale: lists the first tenants and ranges, counts the rest', async () => {
    const many = Array.from({ length: MAX_LISTED_TENANTS + 50 }, (_, i) => tenant(i + 1));
    const wide = Array.from({ length: MAX_LISTED_ITEMS + 5 }, (_, i) => `10.${i}.0.0/16`);
    many[0] = tenant(1, { cidrs: wide });
    const changes = await whitelistChanges(await snapshot([]), await snapshot(many));
    expect(changes.tenantsAdded).to.equal(MAX_LISTED_TENANTS + 50);
    expect(changes.tenants).to.have.length(MAX_LISTED_TENANTS);
    expect(changes.moreTenants).to.equal(50);
    expect(changes.tenants[0]?.cidrsAdded).to.deep.equal({ items: wide.slice(0, MAX_LISTED_ITEMS), more: 5 });
  });

  it('counts changed tenants past the cap, too', async () => {
    const n = MAX_LISTED_TENANTS + 10;
    const before = await snapshot(Array.from({ length: n }, (_, i) => tenant(i + 1)));
    const after = await snapshot(Array.from({ length: n }, (_, i) => tenant(i + 1, { enabled: false })));
    const changes = await whitelistChanges(before, after);
    expect(changes).to.include({ tenantsChanged: n, moreTenants: 10 });
  });

  it('yields to the event loop while it diffs a large whitelist', async () => {
    const before = await snapshot(Array.from({ length: 2000 }, (_, i) => tenant(i + 1)));
    const after = await snapshot(Array.from({ length: 2000 }, (_, i) => tenant(i + 1, { name: 'x' })));
    let ranMeanwhile = false;
    setImmediate(() => (ranMeanwhile = true));
    const diffing = whitelistChanges(before, after, 0);
    expect(ranMeanwhile).to.equal(false);
    const changes = await diffing;
    expect(ranMeanwhile, 'a callback queued before the diff ran before it ended').to.equal(true);
    expect(changes.tenantsChanged).to.equal(2000);
  });

  it('describes an incremental change as a full comparison would, from the changed tenants only', async () => {
    const first = await snapshot([tenant(1), tenant(2), tenant(3)]);
    const next = await applyChanges(first, { upserts: [tenant(1, { name: 'renamed' }), tenant(4)], removals: [oin(2)] }, { oinPattern: OIN });
    const incremental = await whitelistChanges(first, next);
    const full = await whitelistChanges(first, await snapshot([tenant(1, { name: 'renamed' }), tenant(3), tenant(4)]));
    const byOin = (c: typeof full) => ({ ...c, tenants: [...c.tenants].sort((a, b) => a.oin.localeCompare(b.oin)) });
    expect(byOin(incremental)).to.deep.equal(byOin(full));
    expect([incremental.tenantsAdded, incremental.tenantsRemoved, incremental.tenantsChanged]).to.deep.equal([1, 1, 1]);
  });
});
