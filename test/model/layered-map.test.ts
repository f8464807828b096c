import { expect } from 'chai';
import { keysThatMayDiffer, LayeredMap } from '../../src/model/layered-map.ts';

describe('LayeredMap', () => {
  const base = new Map([
    ['a', 1],
    ['b', 2],
    ['c', 3],
  ]);
  const map = new LayeredMap<string, number>(base, new Map([['b', undefined], ['c', 30], ['d', 4]]), 3);

  it('answers from the delta first, then the base, and hides what the delta removed', () => {
    expect([map.get('a'), map.get('b'), map.get('c'), map.get('d'), map.get('e')]).to.deep.equal([1, undefined, 30, 4, undefined]);
    expect([map.has('a'), map.has('b'), map.has('d')]).to.deep.equal([true, false, true]);
  });

  it('iterates every visible entry once', () => {
    expect([...map]).to.deep.equal([
      ['a', 1],
      ['c', 30],
      ['d', 4],
    ]);
    expect([...map.keys()]).to.deep.equal(['a', 'c', 'd']);
    expect([...map.values()]).to.deep.equal([1, 30, 4]);
    const seen: string[] = [];
    map.forEach((value, key) => seen.push(`${key}=${value}`));
    expect(seen).to.deep.equal(['a=1', 'c=30', 'd=4']);
    expect(map.size).to.equal(3);
  });
});

describe('keysThatMayDiffer', () => {
  const base = new Map([
    ['a', 1],
    ['b', 2],
  ]);

  it('names only the deltas of maps over one base', () => {
    const one = new LayeredMap<string, number>(base, new Map([['a', 10]]), 2);
    const two = new LayeredMap<string, number>(base, new Map([['b', undefined], ['c', 3]]), 2);
    expect([...keysThatMayDiffer(one, two)!].sort()).to.deep.equal(['a', 'b', 'c']);
    expect([...keysThatMayDiffer(base, two)!].sort()).to.deep.equal(['b', 'c']);
  });

  it('cannot tell for maps that share no base', () => {
    expect(keysThatMayDiffer(base, new Map(base))).to.equal(undefined);
  });
});
