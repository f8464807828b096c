import { expect } from 'chai';
import { newJti } from '../../src/token/jti.ts';

describe('newJti', () => {
  it('gives 23 base64url characters (136 random bits), never starting with "-", never the same twice', () => {
    const seen = new Set<string>();
    // 20,000 draws: about 300 would start with "-" if none were redrawn.
    for (let i = 0; i < 20_000; i++) {
      const jti = newJti();
      expect(jti).to.match(/^[A-Za-z0-9_][A-Za-z0-9_-]{22}$/);
      seen.add(jti);
    }
    expect(seen.size).to.equal(20_000);
  });
});
