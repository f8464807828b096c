import { expect } from 'chai';
import { MAX_CIDRS_PER_TENANT, MAX_KEYS_PER_TENANT, MAX_TENANTS } from '../../src/model/limits.ts';
import { build, doc, issuesOf, OIN, oneIssue, SECRET, tenant, v4Ranges } from './helpers.ts';

describe('model limits', () => {
  it('states 1,000,000 tenants, 65,536 ranges and 64 keys per tenant', () => {
    expect([MAX_TENANTS, MAX_CIDRS_PER_TENANT, MAX_KEYS_PER_TENANT]).to.deep.equal([1_000_000, 65_536, 64]);
  });

  it('accepts a tenant with exactly 65,536 ranges', async () => {
    const snapshot = await build(doc(tenant({ cidrs: v4Ranges(MAX_CIDRS_PER_TENANT) })));
    expect(snapshot.tenants.get(OIN)?.cidrs.size).to.equal(MAX_CIDRS_PER_TENANT);
  });

  it('refuses a tenant with 65,537 ranges, naming the tenant, without parsing any of them', async () => {
    // Garbage entries: had any been parsed, each would be an issue of its own.
    const cidrs = Array.from({ length: MAX_CIDRS_PER_TENANT + 1 }, () => 'garbage');
    const issues = await issuesOf(doc(tenant({ cidrs })));
    expect(issues).to.have.length(1);
    expect(issues[0]?.path).to.equal('tenants[0].cidrs');
    expect(issues[0]?.message).to.include(`"${OIN}"`).and.include('65537').and.include('65536');
  });

  it('refuses a tenant with more than 64 keys, naming the tenant, and accepts 64', async () => {
    const keys = (n: number): Array<Record<string, unknown>> =>
      Array.from({ length: n }, (_, i) => ({ kid: `k${i}`, alg: 'HS256', secret: SECRET }));
    expect((await build(doc(tenant({ keys: keys(64) })))).tenants.get(OIN)?.keys.list).to.have.length(64);
    const issue = await oneIssue(doc(tenant({ keys: keys(65) })), 'tenants[0].keys');
    expect(issue.message).to.include(`"${OIN}"`).and.include('65').and.include('64');
  });

  it('refuses more than 1,000,000 tenants before looking at any', async () => {
    const issues = await issuesOf({ tenants: new Array(MAX_TENANTS + 1).fill(null) });
    expect(issues).to.have.length(1);
    expect(issues[0]?.path).to.equal('tenants');
    expect(issues[0]?.message).to.include('1000001').and.include('1000000');
  });
});
