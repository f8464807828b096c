import { expect } from 'chai';
import { changedTenants } from '../src/core.ts';
import { applyChanges, buildSnapshot } from '../src/model/snapshot.ts';
import { DEFAULT_PATTERN, doc, OIN, OIN_2, oinOf, tenant } from './model/helpers.ts';

const options = { oinPattern: DEFAULT_PATTERN };

describe('changedTenants', () => {
  it('names the tenants an incremental change replaced or removed, and no other', async () => {
    const first = await buildSnapshot(doc(tenant(), tenant({ oin: OIN_2 }), tenant({ oin: oinOf(3) })), options);
    const second = await applyChanges(first, { upserts: [tenant({ name: 'renamed' })], removals: [OIN_2] }, options);
    const third = await applyChanges(second, { upserts: [tenant({ oin: oinOf(4) })], removals: [] }, options);
    const one = await changedTenants(first, second);
    expect(one.changed.map((t) => t.oin)).to.deep.equal([OIN]);
    expect(one.removed).to.deep.equal([OIN_2]);
    const two = await changedTenants(second, third);
    expect(two.changed.map((t) => t.oin)).to.deep.equal([oinOf(4)]);
    expect(two.removed).to.deep.equal([]);
  });

  it('compares every tenant after a full build', async () => {
    const first = await buildSnapshot(doc(tenant(), tenant({ oin: OIN_2 })), options);
    const next = await buildSnapshot(doc(tenant({ enabled: false })), { ...options, previous: first });
    const { changed, removed } = await changedTenants(first, next);
    expect(changed.map((t) => t.oin)).to.deep.equal([OIN]);
    expect(removed).to.deep.equal([OIN_2]);
  });
});
