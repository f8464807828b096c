import { expect } from 'chai';
import { foldedCollision, foldedCollisionDeep, foldKey, sameFolded } from '../../src/json/casefold.ts';

describe('foldKey', () => {
  for (const [a, b] of [
    ['oin', 'OIN'],
    ['oin', 'Oin'],
    ['oin', 'o\u0131n'], // dotless i: .NET's invariant upper case makes it I
    ['sub', '\u017fub'], // long s: Go's simple folding makes it s
    ['kid', '\u212aid'], // Kelvin sign: folds to k
    ['strasse', 'STRAßE'],
  ]) {
    it(`folds ${JSON.stringify(b)} together with ${JSON.stringify(a)}`, () => {
      expect(foldKey(a as string)).to.equal(foldKey(b as string));
      expect(sameFolded(a as string, b as string)).to.equal(true);
    });
  }

  it('keeps keys apart that no upstream would read as one', () => {
    expect(sameFolded('oin', 'oin_')).to.equal(false);
    expect(sameFolded('oin', 'o-in')).to.equal(false);
    expect(sameFolded('a', 'b')).to.equal(false);
  });
});

describe('foldedCollision', () => {
  it('names the second of two keys equal under folding', () => {
    expect(foldedCollision({ oin: '1', OIN: '2' })).to.equal('OIN');
  });

  it('finds nothing in an object with distinct keys', () => {
    expect(foldedCollision({ oin: '1', name: 'x', kid: 'y' })).to.equal(undefined);
  });

  it('finds a collision nested in objects and arrays', () => {
    expect(foldedCollisionDeep({ a: [{ b: { x: 1, X: 2 } }] })).to.equal('X');
    expect(foldedCollisionDeep({ a: [{ b: { x: 1, y: 2 } }], c: 'x' })).to.equal(undefined);
  });
});
