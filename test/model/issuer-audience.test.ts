import { expect } from 'chai';
import { build, doc, OIN, oneIssue, tenant } from './helpers.ts';

describe('model tenant issuer and audience', () => {
  it('carries them into the Tenant, and leaves them undefined when unset', async () => {
    const snapshot = await build(doc(tenant({ issuer: 'https://idp.example/', audience: 'api://oingate' })));
    expect(snapshot.tenants.get(OIN)?.issuer).to.equal('https://idp.example/');
    expect(snapshot.tenants.get(OIN)?.audience).to.equal('api://oingate');
    const plain = (await build(doc(tenant()))).tenants.get(OIN);
    expect(plain?.issuer).to.equal(undefined);
    expect(plain?.audience).to.equal(undefined);
  });

  it('accepts 1024 characters', async () => {
    const long = 'a'.repeat(1024);
    expect((await build(doc(tenant({ issuer: long, audience: long })))).tenants.get(OIN)?.issuer).to.equal(long);
  });

  for (const field of ['issuer', 'audience']) {
    for (const [what, value] of [
      ['a number', 42],
      ['null', null],
      ['an array', ['https://idp.example/']],
      ['an object', { iss: 'x' }],
      ['the empty string', ''],
      ['over 1024 characters', 'a'.repeat(1025)],
    ] as const) {
      it(`refuses ${what} as ${field}, naming the path`, async () => {
        const issue = await oneIssue(doc(tenant({ [field]: value })), `tenants[0].${field}`);
        expect(issue.message).to.include('non-empty string').and.include('1024');
      });
    }
  }

  it('still refuses an unknown field next to them', async () => {
    const issue = await oneIssue(doc(tenant({ issuer: 'x', issuers: ['y'] })), 'tenants[0]');
    expect(issue.message).to.include('unknown field').and.include('"issuers"');
  });

  it('changes the version when either is set or changed, and tells them apart', async () => {
    const versions = await Promise.all(
      [{}, { issuer: 'x' }, { audience: 'x' }, { issuer: 'y' }, { issuer: 'x', audience: 'x' }].map(
        async (fields) => (await build(doc(tenant(fields)))).version,
      ),
    );
    expect(new Set(versions).size).to.equal(versions.length);
    expect((await build(doc(tenant({ issuer: 'x' })))).version).to.equal(versions[1]);
  });
});
