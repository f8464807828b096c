import { expect } from 'chai';
import { foldedCollision, foldedCollisionDeep, foldKey } from '../../src/json/casefold.ts';

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
    });
  }

  it('keeps keys apart that no upstream would read as one', () => {
    expect(foldKey('oin')).to.not.equal(foldKey('oin_'));
    expect(foldKey('oin')).to.not.equal(foldKey('o-in'));
    expect(foldKey('a')).to.not.equal(foldKey('b'));
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
