import { expect } from 'chai';
import { buildSnapshot, type Snapshot } from '../../src/model/snapshot.ts';
import { SnapshotHolder, type ReloadOutcome } from '../../src/store/holder.ts';
import { withFirstLoadStarted, type RefusalCause, type SourceStatus, type WhitelistSource } from '../../src/store/source.ts';

const OIN_1 = '00000001000000000001';
const OIN_2 = '00000001000000000002';
const OIN_3 = '00000001000000000003';
const SECRET = 'holder-test-secret-0123456789abcdefgh';

function whitelist(...oins: string[]): unknown {
  return {
    tenants: oins.map((oin) => ({ oin, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'k', alg: 'HS256', secret: SECRET }] })),
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A whitelist source under the test's control: `document` is what the store
 * holds now; each load reads it when it starts and answers after `delayMs`
 * (or per-call delays queued in `delays`). `fail` makes loads reject.
 */
class ScriptedSource implements WhitelistSource {
  readonly description = 'scripted:test';
  document: unknown = whitelist(OIN_1);
  fail: string | undefined;
  delayMs = 0;
  readonly delays: number[] = [];
  loads = 0;
  active = 0;
  maxActive = 0;
  watched: (() => void) | undefined;
  closed = false;
  /** When set, revision() answers it (a function: throws to mean "cannot tell"). */
  currentRevision: (() => string | undefined) | undefined;

  revision?(): Promise<string | undefined>;
  loadWithRevision?(): Promise<{ readonly document: unknown; readonly revision: Promise<string | undefined> }>;

  async load(): Promise<unknown> {
    this.loads++;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    // Read the store at the start of the load, like a file read or a DB snapshot.
    const document = this.document;
    const failure = this.fail;
    try {
      const delay = this.delays.shift() ?? this.delayMs;
      if (delay > 0) await sleep(delay);
      if (failure !== undefined) throw new Error(failure);
      return structuredClone(document);
    } finally {
      this.active--;
    }
  }

  status: ((status: SourceStatus) => void) | undefined;

  async watch(changed: () => void, status?: (status: SourceStatus) => void): Promise<void> {
    this.watched = changed;
    this.status = status;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

function newHolder(source: ScriptedSource, events: ConstructorParameters<typeof SnapshotHolder>[2] = {}): SnapshotHolder {
  return new SnapshotHolder(source, (document) => buildSnapshot(document, { oinPattern: /^[0-9]{20}$/u }), events);
}

function oinsOf(snapshot: Snapshot | undefined): string[] {
  return [...(snapshot?.tenants.keys() ?? [])].sort();
}

describe('SnapshotHolder', () => {
  it('is not ready before the first load, and reports the readiness shape', async () => {
    const source = new ScriptedSource();
    const holder = newHolder(source);
    expect(holder.current).to.equal(undefined);
    expect(holder.readiness()).to.deep.equal({
      ready: false,
      store: 'scripted:test',
      version: null,
      tenants: 0,
      loadedAt: null,
      lastError: null,
      lastErrorAt: null,
    });
    source.document = whitelist(OIN_1, OIN_2);
    const outcome = await holder.reload();
    expect(outcome.ok).to.equal(true);
    const readiness = holder.readiness();
    expect(Object.keys(readiness).sort()).to.deep.equal(['lastError', 'lastErrorAt', 'loadedAt', 'ready', 'store', 'tenants', 'version']);
    expect(readiness.ready).to.equal(true);
    expect(readiness.store).to.equal('scripted:test');
    expect(readiness.version).to.equal(holder.current?.version).and.match(/^[0-9a-f]{16}$/);
    expect(readiness.tenants).to.equal(2);
    expect(readiness.loadedAt).to.equal(holder.current?.loadedAt.toISOString());
    expect(Date.parse(readiness.loadedAt as string)).to.be.closeTo(Date.now(), 5_000);
    expect(readiness.lastError).to.equal(null);
  });

  it('start() loads once and then follows the source’s change hints', async () => {
    const source = new ScriptedSource();
    const holder = newHolder(source);
    const first = await holder.start();
    expect(first.ok).to.equal(true);
    expect(source.loads).to.equal(1);
    expect(source.watched).to.be.a('function');
    source.document = whitelist(OIN_1, OIN_3);
    source.watched?.();
    for (let i = 0; i < 200 && oinsOf(holder.current).length < 2; i++) await sleep(5);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_1, OIN_3]);
    await holder.close();
    expect(source.closed).to.equal(true);
    const afterClose = await holder.reload();
    expect(afterClose.ok).to.equal(false);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_1, OIN_3]);
  });

  it('keeps the last good snapshot and sets lastError when the source fails to load', async () => {
    const refused: string[] = [];
    const source = new ScriptedSource();
    const holder = newHolder(source, { refused: (error) => refused.push(error) });
    await holder.reload();
    const good = holder.current;
    expect(good).to.not.equal(undefined);

    source.fail = 'cannot read whitelist.json: ENOENT';
    source.document = whitelist(OIN_2);
    const outcome = await holder.reload();
    expect(outcome).to.deep.equal({ ok: false, error: 'cannot read whitelist.json: ENOENT' });
    expect(holder.current).to.equal(good);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_1]);
    expect(holder.lastError).to.equal('cannot read whitelist.json: ENOENT');
    expect(holder.readiness().lastError).to.equal('cannot read whitelist.json: ENOENT');
    expect(holder.readiness().ready).to.equal(true);
    expect(refused).to.deep.equal(['cannot read whitelist.json: ENOENT']);
  });

  it('keeps the last good snapshot when the new document is invalid, then a later success clears lastError', async () => {
    const loaded: Array<[string, string | undefined]> = [];
    const source = new ScriptedSource();
    const holder = newHolder(source, { loaded: (snapshot, previous) => loaded.push([snapshot.version, previous?.version]) });
    await holder.reload();
    const good = holder.current as Snapshot;

    source.document = { tenants: [{ oin: OIN_2, cidrs: ['0.0.0.0/0'] }] };
    const refused = await holder.reload();
    expect(refused.ok).to.equal(false);
    expect(holder.current).to.equal(good);
    expect(holder.lastError).to.be.a('string').and.include('tenants[0].cidrs[0]');
    expect(holder.readiness().version).to.equal(good.version);

    source.document = whitelist(OIN_2);
    const recovered = await holder.reload();
    expect(recovered.ok && recovered.changed).to.equal(true);
    expect(holder.lastError).to.equal(null);
    expect(holder.readiness().lastError).to.equal(null);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_2]);
    expect(loaded).to.deep.equal([
      [good.version, undefined],
      [holder.current?.version, good.version],
    ]);
  });

  it('a failed first load leaves it unready with lastError set; a later success makes it ready', async () => {
    const source = new ScriptedSource();
    source.fail = 'connection refused';
    const holder = newHolder(source);
    const outcome = await holder.reload();
    expect(outcome.ok).to.equal(false);
    expect(holder.readiness()).to.include({ ready: false, version: null, tenants: 0, lastError: 'connection refused' });
    source.fail = undefined;
    await holder.reload();
    expect(holder.readiness()).to.include({ ready: true, tenants: 1, lastError: null });
  });

  it('does not swap the snapshot for an identical document (same object, changed: false)', async () => {
    let loadedEvents = 0;
    const source = new ScriptedSource();
    const holder = newHolder(source, { loaded: () => loadedEvents++ });
    const first = await holder.reload();
    expect(first.ok && first.changed).to.equal(true);
    const snapshot = holder.current;
    const loadedAt = holder.readiness().loadedAt;

    // Same facts, other order and other object identity.
    source.document = { tenants: [{ keys: [{ secret: SECRET, alg: 'HS256', kid: 'k' }], cidrs: ['127.0.0.0/8'], oin: OIN_1 }] };
    await sleep(5);
    const second = await holder.reload();
    expect(second.ok).to.equal(true);
    expect(second.ok && second.changed).to.equal(false);
    expect(second.ok && second.snapshot).to.equal(snapshot);
    expect(holder.current).to.equal(snapshot);
    expect(holder.readiness().loadedAt).to.equal(loadedAt);
    expect(loadedEvents).to.equal(1);
  });

  it('keeps reloading after an observer throws: a failing logger or metric never wedges the queue', async () => {
    const failures: unknown[] = [];
    const source = new ScriptedSource();
    source.delayMs = 20;
    const holder = newHolder(source, {
      loaded: () => {
        throw new Error('observer broke');
      },
      refused: () => {
        throw new Error('observer broke too');
      },
      observerFailed: (error) => failures.push(error),
    });
    // A reload queued behind the one whose observer throws.
    const [first, queued] = await Promise.all([holder.reload(), holder.reload()]);
    expect(first.ok).to.equal(true);
    expect(queued.ok).to.equal(true);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_1]);

    source.document = whitelist(OIN_2);
    const later = await holder.reload();
    expect(later.ok && later.changed).to.equal(true);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_2]);

    source.fail = 'store down';
    const refused = await holder.reload();
    expect(refused.ok).to.equal(false);
    expect(holder.lastError).to.equal('store down');
    expect(failures.map((e) => (e as Error).message)).to.include.members(['observer broke', 'observer broke too']);
  });

  it('collapses a burst of 100 reloads during a running one into at most 2 loads, and answers every caller', async () => {
    const source = new ScriptedSource();
    const holder = newHolder(source);
    await holder.reload();
    source.loads = 0;
    source.delayMs = 40;

    const running = holder.reload();
    source.document = whitelist(OIN_1, OIN_2);
    const burst: Array<Promise<ReloadOutcome>> = [];
    for (let i = 0; i < 100; i++) burst.push(holder.reload());
    const outcomes = await Promise.all([running, ...burst]);

    expect(outcomes).to.have.length(101);
    for (const outcome of outcomes) expect(outcome.ok).to.equal(true);
    expect(source.loads).to.be.at.most(2).and.at.least(1);
    expect(source.maxActive).to.equal(1);
    // The triggers came after the change, so the last load saw it.
    expect(oinsOf(holder.current)).to.deep.equal([OIN_1, OIN_2]);
    const last = outcomes[outcomes.length - 1] as ReloadOutcome;
    expect(last.ok && last.snapshot).to.equal(holder.current);

    // Once quiet, a new trigger loads again (nothing is stuck).
    const before = source.loads;
    source.delayMs = 0;
    await holder.reload();
    expect(source.loads).to.equal(before + 1);
  });

  it('repeated bursts never run two loads at once and keep at most one queued', async () => {
    const source = new ScriptedSource();
    const holder = newHolder(source);
    source.delayMs = 10;
    const all: Array<Promise<ReloadOutcome>> = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 20; i++) all.push(holder.reload());
      await sleep(3);
    }
    const outcomes = await Promise.all(all);
    expect(outcomes.every((o) => o.ok)).to.equal(true);
    expect(source.maxActive).to.equal(1);
    // Each synchronous round of 20 triggers can start at most one load and queue one more.
    expect(source.loads).to.be.at.most(10);
  });

  it('never ends with the older document enforced after a slow first load followed by triggers', async () => {
    const source = new ScriptedSource();
    const swaps: string[][] = [];
    const tracked = newHolder(source, { loaded: (snapshot) => swaps.push(oinsOf(snapshot)) });

    // Load 1 reads v1 and is slow; the store then changes to v2 and v3, each with a trigger.
    source.document = whitelist(OIN_1);
    source.delays.push(150, 0, 0);
    const slow = tracked.reload();
    await sleep(10);
    source.document = whitelist(OIN_2);
    const second = tracked.reload();
    await sleep(10);
    source.document = whitelist(OIN_3);
    const third = tracked.reload();
    const outcomes = await Promise.all([slow, second, third]);

    expect(outcomes.every((o) => o.ok)).to.equal(true);
    expect(oinsOf(tracked.current)).to.deep.equal([OIN_3]);
    expect(swaps.at(-1)).to.deep.equal([OIN_3]);
    expect(source.loads).to.equal(2);
    // v1 may be enforced only before v3, never after it.
    expect(swaps).to.deep.equal([[OIN_1], [OIN_3]]);
  });

  it('a slow refused load followed by a good one ends with the good one and no lastError', async () => {
    const source = new ScriptedSource();
    const holder = newHolder(source);
    await holder.reload();
    source.document = { tenants: 'broken' };
    source.delays.push(100);
    const bad = holder.reload();
    await sleep(10);
    source.document = whitelist(OIN_2);
    const good = holder.reload();
    const [badOutcome, goodOutcome] = await Promise.all([bad, good]);
    expect(badOutcome.ok).to.equal(false);
    expect(goodOutcome.ok).to.equal(true);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_2]);
    expect(holder.lastError).to.equal(null);
  });
});

describe('SnapshotHolder with a source that reports revisions', () => {
  function revisionedSource(): ScriptedSource {
    const source = new ScriptedSource();
    source.revision = async () => source.currentRevision?.();
    return source;
  }

  it('skips load and build when the store revision equals the one it last accepted', async () => {
    const source = revisionedSource();
    let revision = 'r1';
    source.currentRevision = () => revision;
    const holder = newHolder(source);
    await holder.reload();
    const snapshot = holder.current;
    expect(source.loads).to.equal(1);

    const again = await holder.reload();
    expect(again.ok && again.changed).to.equal(false);
    expect(source.loads, 'no second load for an unchanged store').to.equal(1);
    expect(holder.current).to.equal(snapshot);

    revision = 'r2';
    source.document = whitelist(OIN_2);
    const changed = await holder.reload();
    expect(changed.ok && changed.changed).to.equal(true);
    expect(source.loads).to.equal(2);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_2]);
  });

  it('enforces a first load without waiting for its revision, then skips the unchanged store once the revision came', async () => {
    const source = revisionedSource();
    source.currentRevision = () => 'r1';
    let revisionArrives!: (value: string | undefined) => void;
    let revisionsAsked = 0;
    source.loadWithRevision = async () => {
      revisionsAsked++;
      const revision = new Promise<string | undefined>((resolve) => {
        revisionArrives = resolve;
      });
      return { document: await source.load(), revision };
    };
    const holder = newHolder(source);
    expect((await holder.reload()).ok).to.equal(true);
    expect(holder.current).to.not.equal(undefined);
    expect([source.loads, revisionsAsked]).to.deep.equal([1, 1]);
    // The store changed before the first load's revision came: read again (its revision before it).
    source.currentRevision = () => 'r2';
    source.document = whitelist(OIN_2);
    await holder.reload();
    expect(source.loads).to.equal(2);
    // The first load's revision, late: another load was accepted since, so it is not recorded over r2.
    revisionArrives('r1');
    await sleep(0);
    const unchanged = await holder.reload();
    expect(unchanged.ok && unchanged.changed).to.equal(false);
    expect(source.loads).to.equal(2);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_2]);
    // Only a first load asks for it this way.
    expect(revisionsAsked).to.equal(1);

    const fresh = revisionedSource();
    fresh.currentRevision = () => 'r1';
    fresh.loadWithRevision = async () => ({ document: await fresh.load(), revision: Promise.resolve('r1') });
    const other = newHolder(fresh);
    await other.reload();
    await sleep(0);
    const again = await other.reload();
    expect(again.ok && again.changed).to.equal(false);
    expect(fresh.loads, 'the unchanged store is not loaded again').to.equal(1);
  });

  it('takes its first load from one started early, once; a failed early start is refused, never unhandled', async () => {
    const source = revisionedSource();
    source.currentRevision = () => 'r1';
    let started = 0;
    source.loadWithRevision = async () => {
      started++;
      return { document: await source.load(), revision: Promise.resolve('r1') };
    };
    withFirstLoadStarted(source);
    expect(started, 'started when wrapped').to.equal(1);
    const holder = newHolder(source);
    expect((await holder.reload()).ok).to.equal(true);
    expect([started, source.loads]).to.deep.equal([1, 1]);
    // Asked again (a holder's first load once more), it starts a new one.
    await source.loadWithRevision();
    expect(started).to.equal(2);

    const failing = new ScriptedSource();
    failing.fail = 'store down';
    failing.loadWithRevision = async () => ({ document: await failing.load(), revision: Promise.resolve(undefined) });
    // Its rejection is pending, with nobody waiting yet: it must not surface as unhandled.
    const unhandled: unknown[] = [];
    const record = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      withFirstLoadStarted(failing);
      await sleep(20);
    } finally {
      process.off('unhandledRejection', record);
    }
    expect(unhandled).to.deep.equal([]);
    const refused = await newHolder(failing).reload();
    expect(refused.ok).to.equal(false);
    expect(refused.ok ? '' : refused.error).to.include('store down');
  });

  it('loads when the source cannot tell its revision', async () => {
    const source = revisionedSource();
    source.currentRevision = () => {
      throw new Error('store down');
    };
    const holder = newHolder(source);
    await holder.reload();
    await holder.reload();
    expect(source.loads).to.equal(2);
  });

  it('after a refused change is reverted, finds the store equal to what it enforces and clears lastError', async () => {
    const source = revisionedSource();
    let revision = 'good';
    source.currentRevision = () => revision;
    const holder = newHolder(source);
    await holder.reload();

    revision = 'bad';
    source.document = { tenants: [{ oin: 'not an oin', cidrs: [] }] };
    expect((await holder.reload()).ok).to.equal(false);
    expect(holder.lastError).to.be.a('string');

    revision = 'good';
    const back = await holder.reload();
    expect(back.ok).to.equal(true);
    expect(holder.lastError).to.equal(null);
    expect(source.loads, 'the reverted store is not loaded again').to.equal(2);
    expect(oinsOf(holder.current)).to.deep.equal([OIN_1]);
  });

  describe('lastErrorAt, causes and connection status', () => {
    it('stamps lastErrorAt when lastError is set and clears both on the next good load', async () => {
      const source = new ScriptedSource();
      const holder = newHolder(source);
      await holder.reload();
      source.fail = 'store down';
      const before = Date.now();
      await holder.reload();
      const at = holder.readiness().lastErrorAt;
      expect(at).to.be.a('string');
      expect(Date.parse(at as string)).to.be.within(before - 1, Date.now() + 1);
      source.fail = undefined;
      await holder.reload();
      expect(holder.readiness()).to.include({ lastError: null, lastErrorAt: null });
    });

    it('tells refused loads apart: an invalid whitelist is "invalid", a store that cannot be read "unreachable"', async () => {
      const causes: RefusalCause[] = [];
      const source = new ScriptedSource();
      const holder = newHolder(source, { refused: (_error, cause) => causes.push(cause) });
      source.document = { tenants: [{ oin: OIN_1, cidrs: ['0.0.0.0/0'] }] };
      await holder.reload();
      source.fail = 'connection refused';
      await holder.reload();
      expect(causes).to.deep.equal(['invalid', 'unreachable']);
    });

    it('sets lastError at once when the source reports a failed connection, and passes the status on', async () => {
      const statuses: SourceStatus[] = [];
      const source = new ScriptedSource();
      const holder = newHolder(source, { connection: (status) => statuses.push(status) });
      await holder.start();
      expect(holder.lastError).to.equal(null);
      source.status?.({ connected: false, error: 'cannot connect to store: password authentication failed' });
      expect(holder.readiness()).to.include({ lastError: 'cannot connect to store: password authentication failed' });
      expect(holder.readiness().lastErrorAt).to.be.a('string');
      source.status?.({ connected: true });
      expect(statuses).to.deep.equal([
        { connected: false, error: 'cannot connect to store: password authentication failed' },
        { connected: true },
      ]);
    });

    it('reports storeConnected only for a source that has a connection', async () => {
      const plain = newHolder(new ScriptedSource());
      expect(plain.readiness()).not.to.have.property('storeConnected');
      const connectedSource = Object.assign(new ScriptedSource(), { connected: false });
      const holder = newHolder(connectedSource);
      expect(holder.readiness()).to.include({ storeConnected: false });
      connectedSource.connected = true;
      expect(holder.readiness()).to.include({ storeConnected: true });
    });

    it("rewrites the issues' places with the source's describePath, given the document that was validated", async () => {
      const source = Object.assign(new ScriptedSource(), {
        describePath: (document: unknown, path: string) =>
          path.replace(/^tenants\[(\d+)\]/, (_m, i: string) => `tenant ${(document as { tenants: { oin: string }[] }).tenants[Number(i)]?.oin}`),
      });
      source.document = { tenants: [{ oin: OIN_1, cidrs: ['127.0.0.0/8'] }, { oin: OIN_2, cidrs: ['0.0.0.0/0'] }] };
      const holder = newHolder(source);
      await holder.reload();
      expect(holder.lastError).to.match(new RegExp(`^invalid whitelist: tenant ${OIN_2}\\.cidrs\\[0\\]: `));
      expect(holder.lastError).not.to.include('tenants[1]');
    });
  });
});
