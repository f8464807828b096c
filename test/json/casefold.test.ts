import { expect } from 'chai';
import { foldedCollision, foldedCollisionDeep, foldKey, foldsTo } from '../../src/json/casefold.ts';

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

describe('foldsTo', () => {
  const keys = ['oin', 'OIN', 'Oin', 'o\u0131n', '\u0130n', 'kid', '\u212aid', 'Kid', '\u017fub', 'sub', 'STRAßE', 'strasse', 'Strasse', '', 'i', 'I', '\u0131', '_oin', '1oin', 'oIn\u00e9', 'padding', 'type'];
  it('agrees with comparing foldKey results, for keys starting with ASCII and with other characters', () => {
    for (const key of keys) {
      for (const other of keys) {
        const folded = foldKey(other);
        expect(foldsTo(key, folded), `${JSON.stringify(key)} -> ${JSON.stringify(folded)}`).to.equal(foldKey(key) === folded);
      }
    }
  });

  it('finds the twins a case-insensitive upstream would take for the key', () => {
    expect(foldsTo('OIN', 'oin')).to.equal(true);
    expect(foldsTo('\u212aid', 'kid')).to.equal(true);
    expect(foldsTo('type', 'oin')).to.equal(false);
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
