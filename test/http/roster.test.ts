import { expect } from 'chai';
import { Roster, type Rostered } from '../../src/http/roster.ts';

class Entry implements Rostered<Entry> {
  rosterPrev: Entry | undefined;
  rosterNext: Entry | undefined;
  constructor(readonly name: string) {}
}

const names = (roster: Roster<Entry>): string[] => [...roster].map((entry) => entry.name);

describe('Roster', () => {
  it('holds what was added and counts it', () => {
    const roster = new Roster<Entry>();
    const [a, b, c] = [new Entry('a'), new Entry('b'), new Entry('c')];
    roster.add(a);
    roster.add(b);
    roster.add(c);
    expect(roster.size).to.equal(3);
    expect(names(roster).sort()).to.deep.equal(['a', 'b', 'c']);
  });

  it('removes the first, a middle and the last entry, and can be filled again', () => {
    const roster = new Roster<Entry>();
    const entries = ['a', 'b', 'c', 'd'].map((name) => new Entry(name));
    for (const entry of entries) roster.add(entry);
    roster.delete(entries[3]!); // the first (entries are added at the front)
    roster.delete(entries[1]!);
    roster.delete(entries[0]!); // the last
    expect(names(roster)).to.deep.equal(['c']);
    roster.delete(entries[2]!);
    expect(roster.size).to.equal(0);
    expect(names(roster)).to.deep.equal([]);
    roster.add(entries[0]!);
    expect(names(roster)).to.deep.equal(['a']);
  });

  it('ignores removing an entry twice or one it never held', () => {
    const roster = new Roster<Entry>();
    const [a, b] = [new Entry('a'), new Entry('b')];
    roster.add(a);
    roster.add(b);
    roster.delete(a);
    roster.delete(a);
    roster.delete(new Entry('stranger'));
    expect(roster.size).to.equal(1);
    expect(names(roster)).to.deep.equal(['b']);
  });

  it('lets an iteration remove the entry it is at and still visits every other one', () => {
    const roster = new Roster<Entry>();
    for (const name of ['a', 'b', 'c', 'd']) roster.add(new Entry(name));
    const visited: string[] = [];
    for (const entry of roster) {
      visited.push(entry.name);
      if (entry.name !== 'c') roster.delete(entry);
    }
    expect(visited.sort()).to.deep.equal(['a', 'b', 'c', 'd']);
    expect(names(roster)).to.deep.equal(['c']);
    expect(roster.size).to.equal(1);
  });
});
