import { expect } from 'chai';
import { describeRowPath } from '../../../src/store/postgres/row-path.ts';

const DOC = {
  tenants: [
    { oin: '00000001000000000001', cidrs: ['10.0.0.0/8'], keys: [{ kid: 'k1' }] },
    { oin: 'evil\n"oin', cidrs: [], keys: [{ kid: 'x'.repeat(100) }, { kid: 'line\nbreak' }] },
  ],
};

describe('describeRowPath', () => {
  it('names a row by OIN and kid or CIDR, with the column for a field', () => {
    expect(describeRowPath(DOC, 'tenants[0]')).to.equal('tenant 00000001000000000001');
    expect(describeRowPath(DOC, 'tenants[0].jwksUri')).to.equal('tenant 00000001000000000001 jwks_uri');
    expect(describeRowPath(DOC, 'tenants[0].cidrs[0]')).to.equal('tenant 00000001000000000001 cidr "10.0.0.0/8"');
    expect(describeRowPath(DOC, 'tenants[0].keys[0]')).to.equal('tenant 00000001000000000001 key "k1"');
    expect(describeRowPath(DOC, 'tenants[0].keys[0].publicKey')).to.equal('tenant 00000001000000000001 key "k1" public_key');
    expect(describeRowPath(DOC, 'tenants[0].keys')).to.equal('tenant 00000001000000000001 keys');
  });

  it('quotes and shortens hostile OINs and kids, so one issue stays one line', () => {
    expect(describeRowPath(DOC, 'tenants[1].oin')).to.equal('tenant "evil\\n\\"oin" oin');
    expect(describeRowPath(DOC, 'tenants[1].keys[0].kid')).to.equal(`tenant "evil\\n\\"oin" key "${'x'.repeat(64)}…" kid`);
    expect(describeRowPath(DOC, 'tenants[1].keys[1]')).to.equal('tenant "evil\\n\\"oin" key "line\\nbreak"');
  });

  it('names a revoked_tokens row by its jti and tenant, and a tenant column added later by its name', () => {
    const doc = { ...DOC, revokedTokens: [{ jti: 'leaked\n1', oin: '00000001000000000001' }, { oin: '00000001000000000001' }] };
    expect(describeRowPath(doc, 'revokedTokens[0].jti')).to.equal('revoked token "leaked\\n1" of tenant 00000001000000000001 jti');
    expect(describeRowPath(doc, 'revokedTokens[1]')).to.equal('revoked token (no jti) of tenant 00000001000000000001');
    expect(describeRowPath(doc, 'revokedTokens[0].expiresAt')).to.equal('revoked token "leaked\\n1" of tenant 00000001000000000001 expires_at');
    expect(describeRowPath(doc, 'revokedTokens[7].jti')).to.equal('revokedTokens[7].jti');
    expect(describeRowPath(DOC, 'tenants[0].tokensIssuedAfter')).to.equal('tenant 00000001000000000001 tokens_issued_after');
  });

  it('leaves a path it does not know, or whose row is missing, as it is', () => {
    for (const path of ['$', 'tenants', 'tenants[9].oin', 'tenants[0].keys[5]', 'tenants[0].other[0]']) {
      expect(describeRowPath(DOC, path)).to.equal(path);
    }
  });
});
