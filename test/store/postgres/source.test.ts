import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import { migrate } from '../../../src/store/postgres/migrate.ts';
import {
  LISTEN_APPLICATION_NAME,
  LOAD_APPLICATION_NAME,
  PostgresSource,
  describeConnectionString,
  passwordScrubber,
  type SourceLogger,
} from '../../../src/store/postgres/source.ts';
import { startTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const SQL_DIR = fileURLToPath(new URL('../../../sql', import.meta.url));
const PASSWORD = 's3cr3t-pw';

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
async function eventually(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: object;
  msg: string | undefined;
}

function captureLogger(): SourceLogger & { lines: LogLine[]; text(): string; count(level: string, re: RegExp): number } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
    text: () => JSON.stringify(lines),
    count: (level, re) => lines.filter((l) => l.level === level && re.test(l.msg ?? '')).length,
  };
}

function counter(): { fn: () => void; readonly calls: number } {
  let calls = 0;
  return {
    fn: () => {
      calls++;
    },
    get calls() {
      return calls;
    },
  };
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

function withPassword(url: string): string {
  const u = new URL(url);
  u.password = PASSWORD;
  return u.toString();
}

/** Backend pids of a database's oingate listener connections. */
async function listenerPids(admin: Admin, url: string): Promise<number[]> {
  const database = new URL(url).pathname.slice(1);
  const { rows } = await admin.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
    [database, LISTEN_APPLICATION_NAME],
  );
  return rows.map((r) => r.pid);
}

/** Runs statements on the cluster's `postgres` database, each on a new connection (the server restarts). */
interface Admin {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

function adminFor(db: TestDatabase): Admin {
  return {
    async query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
      const client = await connect(db.url);
      try {
        return await client.query<R>(text, values);
      } finally {
        await client.end();
      }
    },
  };
}

describe('PostgresSource', function () {
  let db: TestDatabase;
  let admin: Admin;
  const sources: PostgresSource[] = [];

  async function freshDatabase(): Promise<string> {
    const url = await db.createDatabase();
    await migrate(url, SQL_DIR);
    return url;
  }

  function source(url: string, options: Partial<ConstructorParameters<typeof PostgresSource>[0]> = {}) {
    const s = new PostgresSource({ connectionString: url, resyncSeconds: 3600, ...options });
    sources.push(s);
    return s;
  }

  before(async function () {
    // Own cluster: the outage tests below stop and start it.
    db = await startTestDatabase({ private: true });
    admin = adminFor(db);
  });

  afterEach(async function () {
    await Promise.all(sources.splice(0).map((s) => s.close()));
  });

  after(async function () {
    await db?.destroy();
  });

  describe('load', function () {
    let url: string;
    let client: pg.Client;

    before(async function () {
      url = await freshDatabase();
      client = await connect(url);
    });

    after(async function () {
      await client?.end();
    });

    beforeEach(async function () {
      await client.query('DELETE FROM oingate.tenants');
    });

    it('returns an empty whitelist from a freshly migrated database', async function () {
      expect(await source(url).load()).to.deep.equal({ tenants: [] });
    });

    it('assembles rows into the document shape, issuer and audience included, leaving out null fields', async function () {
      await client.query(`
        INSERT INTO oingate.tenants (oin, name, enabled, jwks_uri, issuer, audience) VALUES
          ('b', 'Bee', false, NULL, NULL, NULL), ('a', '', true, 'https://idp.example/jwks', 'https://idp.example', 'gate-a');
        INSERT INTO oingate.tenant_cidrs (oin, cidr) VALUES
          ('b', '10.0.0.1'), ('b', '2001:db8::/32'), ('b', '10.1.0.0/16');
        INSERT INTO oingate.tenant_keys (oin, kid, alg, secret, public_key, enabled, not_before, expires_at) VALUES
          ('b', 'k2', 'RS256', NULL, 'PEM', false, '2026-03-01 12:00:00+01', NULL),
          ('b', 'k1', 'HS256', 'secret-padded-to-at-least-thirty-two-bytes', NULL, true, NULL, '2030-01-01T00:00:00.123456Z');
      `);
      expect(await source(url).load()).to.deep.equal({
        tenants: [
          {
            oin: 'a',
            name: '',
            enabled: true,
            cidrs: [],
            keys: [],
            jwksUri: 'https://idp.example/jwks',
            issuer: 'https://idp.example',
            audience: 'gate-a',
          },
          {
            oin: 'b',
            name: 'Bee',
            enabled: false,
            cidrs: ['10.0.0.1/32', '10.1.0.0/16', '2001:db8::/32'],
            keys: [
              { kid: 'k1', alg: 'HS256', secret: 'secret-padded-to-at-least-thirty-two-bytes', enabled: true, expiresAt: '2030-01-01T00:00:00.123Z' },
              { kid: 'k2', alg: 'RS256', publicKey: 'PEM', enabled: false, notBefore: '2026-03-01T11:00:00.000Z' },
            ],
          },
        ],
      });
    });

    it("does not see another transaction's uncommitted rows, and sees them whole once committed", async function () {
      const src = source(url);
      const writer = await connect(url);
      try {
        await writer.query('BEGIN');
        await writer.query(`INSERT INTO oingate.tenants (oin) VALUES ('t')`);
        await writer.query(`INSERT INTO oingate.tenant_cidrs VALUES ('t', '192.0.2.0/24')`);
        await writer.query(`INSERT INTO oingate.tenant_keys (oin, kid, alg, secret) VALUES ('t', 'k', 'HS256', 's-padded-to-at-least-thirty-two-bytes')`);
        expect(await src.load()).to.deep.equal({ tenants: [] });
        await writer.query('COMMIT');
        expect(await src.load()).to.deep.equal({
          tenants: [
            {
              oin: 't',
              name: '',
              enabled: true,
              cidrs: ['192.0.2.0/24'],
              keys: [{ kid: 'k', alg: 'HS256', secret: 's-padded-to-at-least-thirty-two-bytes', enabled: true }],
            },
          ],
        });
      } finally {
        await writer.end();
      }
    });

    it('reads all three tables from one snapshot, even when a change commits between its reads', async function () {
      await client.query(`
        INSERT INTO oingate.tenants (oin, name) VALUES ('snap', 'old');
        INSERT INTO oingate.tenant_cidrs VALUES ('snap', '10.0.0.0/8');
      `);
      const src = source(url);
      const writer = await connect(url);
      try {
        // Hold tenant_cidrs so load() reads tenants, then waits before reading cidrs.
        await writer.query('BEGIN');
        await writer.query('LOCK TABLE oingate.tenant_cidrs IN ACCESS EXCLUSIVE MODE');
        const loading = src.load();
        await eventually('load() waits for the cidrs lock', 5000, async () => {
          const { rows } = await client.query(
            `SELECT 1 FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'oingate' AND wait_event_type = 'Lock'`,
          );
          return rows.length === 1;
        });
        await writer.query(`UPDATE oingate.tenants SET name = 'new' WHERE oin = 'snap'`);
        await writer.query(`UPDATE oingate.tenant_cidrs SET cidr = '192.168.0.0/16' WHERE oin = 'snap'`);
        await writer.query('COMMIT');
        const during = (await loading) as { tenants: { name: string; cidrs: string[] }[] };
        expect(during.tenants.map((t) => [t.name, t.cidrs])).to.deep.equal([['old', ['10.0.0.0/8']]]);
        const after = (await src.load()) as { tenants: { name: string; cidrs: string[] }[] };
        expect(after.tenants.map((t) => [t.name, t.cidrs])).to.deep.equal([['new', ['192.168.0.0/16']]]);
      } finally {
        await writer.end();
      }
    });

    it('rejects, saying to run `oingate migrate`, when the schema is missing', async function () {
      const empty = await db.createDatabase();
      const err = await source(empty).load().then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err).to.be.instanceOf(Error);
      expect(err!.message).to.include('oingate migrate');
    });

    it('reports a revision that stays put without changes and moves with every kind of row change', async function () {
      const src = source(url);
      const seen = new Set<string>();
      const step = async (sql?: string) => {
        if (sql) await client.query(sql);
        const revision = await src.revision();
        expect(revision).to.be.a('string');
        return revision as string;
      };
      const empty = await step();
      expect(await step(), 'unchanged store, same revision').to.equal(empty);
      seen.add(empty);
      for (const sql of [
        "INSERT INTO oingate.tenants (oin) VALUES ('a')",
        "UPDATE oingate.tenants SET name = 'A' WHERE oin = 'a'",
        "INSERT INTO oingate.tenant_cidrs (oin, cidr) VALUES ('a', '10.0.0.0/8')",
        "UPDATE oingate.tenant_cidrs SET cidr = '10.0.0.0/9'",
        "INSERT INTO oingate.tenant_keys (oin, kid, alg, secret) VALUES ('a', 'k', 'HS256', 'one-secret-padded-to-at-least-thirty-two-bytes')",
        "UPDATE oingate.tenant_keys SET secret = 'another-secret-padded-to-at-least-thirty-two-bytes'",
        "UPDATE oingate.tenant_keys SET expires_at = now() + interval '1 day'",
      ]) {
        const revision = await step(sql);
        expect(seen.has(revision), `revision after: ${sql}`).to.equal(false);
        seen.add(revision);
      }
      // Content, not history: back to the same rows, back to the same revision.
      const withCidr = [...seen][4];
      expect(await step('DELETE FROM oingate.tenant_keys'), 'same rows as before the key was added').to.equal(withCidr);
    });

    it('gives with a load the revision of a state no newer than the one loaded, digested meanwhile', async function () {
      const src = source(url);
      await client.query("INSERT INTO oingate.tenants (oin) VALUES ('r1')");
      const first = await src.loadWithRevision();
      expect(first.document.tenants.map((t) => t.oin)).to.deep.equal(['r1']);
      const before = await first.revision;
      expect(before, 'unchanged store: the revision revision() reads').to.equal(await src.revision());

      // Both the load and the digest wait on a lock; a change commits meanwhile.
      const locker = await holdLock();
      let pending: Promise<{ document: { tenants: { oin: string }[] }; revision: Promise<string | undefined> }>;
      try {
        pending = src.loadWithRevision();
        await eventually('the load and the digest wait for the lock', 5000, async () => (await waitingLoadPids()).length === 2);
        await client.query("INSERT INTO oingate.tenants (oin) VALUES ('r2')");
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
      const second = await pending;
      expect(second.document.tenants.map((t) => t.oin), 'the load read the state before the change').to.deep.equal(['r1']);
      expect(await second.revision, 'so did the digest').to.equal(before);
      expect(await src.revision(), 'and the change shows in the next one').to.not.equal(before);
      await client.query("DELETE FROM oingate.tenants WHERE oin IN ('r1', 'r2')");
    });

    /** Holds an ACCESS EXCLUSIVE lock on tenant_cidrs, so a load blocks at its second SELECT. */
    async function holdLock(): Promise<pg.Client> {
      const locker = await connect(url);
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE oingate.tenant_cidrs IN ACCESS EXCLUSIVE MODE');
      return locker;
    }

    async function waitingLoadPids(): Promise<number[]> {
      const { rows } = await client.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock'",
        [LOAD_APPLICATION_NAME],
      );
      return rows.map((r) => r.pid);
    }

    it('rejects, and the process survives, when its backend is killed in the middle of a load', async function () {
      const locker = await holdLock();
      try {
        const pending = source(url).load().then(
          () => null,
          (e: unknown) => e as Error,
        );
        let pids: number[] = [];
        await eventually('the load waits for the lock', 5000, async () => {
          pids = await waitingLoadPids();
          return pids.length === 1;
        });
        await client.query('SELECT pg_terminate_backend($1)', [pids[0]]);
        const err = await pending;
        expect(err, 'the load rejects instead of crashing the process with an unhandled error event').to.be.instanceOf(Error);
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
      // The same source still works afterwards.
      expect(await source(url).load()).to.deep.equal({ tenants: [] });
    });

    it('gives up on a load stuck behind a lock within its timeout, and leaves no backend waiting', async function () {
      const locker = await holdLock();
      try {
        const started = Date.now();
        const err = await source(url, { loadTimeoutMs: 300 }).load().then(
          () => null,
          (e: unknown) => e as Error,
        );
        expect(err).to.be.instanceOf(Error);
        expect(Date.now() - started, 'ms until the load gave up').to.be.below(2_000);
        await eventually('no load backend is left waiting', 2000, async () => (await waitingLoadPids()).length === 0);
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
    });

    it('rejects after close()', async function () {
      const src = source(url);
      await src.close();
      await src.close(); // idempotent
      const err = await src.load().then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err?.message).to.match(/closed/);
    });
  });

  describe('watch', function () {
    let url: string;
    let client: pg.Client;
    let src: PostgresSource;
    let changed: ReturnType<typeof counter>;

    before(async function () {
      url = await freshDatabase();
      client = await connect(url);
      changed = counter();
      src = new PostgresSource({ connectionString: url, resyncSeconds: 3600 });
      await src.watch(changed.fn);
      await eventually('the first connect calls changed', 2000, () => changed.calls === 1);
    });

    after(async function () {
      await src?.close();
      await client?.end();
    });

    const kinds: { title: string; setup?: string; sql: string }[] = [
      { title: 'INSERT on tenants', sql: `INSERT INTO oingate.tenants (oin) VALUES ('w')` },
      { title: 'UPDATE on tenants', sql: `UPDATE oingate.tenants SET enabled = false WHERE oin = 'w'` },
      { title: 'INSERT on tenant_cidrs', sql: `INSERT INTO oingate.tenant_cidrs VALUES ('w', '10.0.0.0/8')` },
      { title: 'UPDATE on tenant_cidrs', sql: `UPDATE oingate.tenant_cidrs SET cidr = '10.1.0.0/16'` },
      { title: 'DELETE on tenant_cidrs', sql: `DELETE FROM oingate.tenant_cidrs` },
      {
        title: 'INSERT on tenant_keys',
        sql: `INSERT INTO oingate.tenant_keys (oin, kid, alg, secret) VALUES ('w', 'k', 'HS256', 's-padded-to-at-least-thirty-two-bytes')`,
      },
      { title: 'UPDATE on tenant_keys', sql: `UPDATE oingate.tenant_keys SET enabled = false` },
      { title: 'DELETE on tenant_keys', sql: `DELETE FROM oingate.tenant_keys` },
      { title: 'DELETE on tenants', sql: `DELETE FROM oingate.tenants` },
      {
        title: 'TRUNCATE of tenant_cidrs',
        setup: `INSERT INTO oingate.tenants (oin) VALUES ('w'); INSERT INTO oingate.tenant_cidrs VALUES ('w', '10.0.0.0/8')`,
        sql: `TRUNCATE oingate.tenant_cidrs`,
      },
      {
        title: 'TRUNCATE of tenant_keys',
        setup: `INSERT INTO oingate.tenant_keys (oin, kid, alg, secret) VALUES ('w', 'k', 'HS256', 's-padded-to-at-least-thirty-two-bytes')`,
        sql: `TRUNCATE oingate.tenant_keys`,
      },
      { title: 'TRUNCATE of tenants', sql: `TRUNCATE oingate.tenants CASCADE` },
    ];

    for (const kind of kinds) {
      it(`calls changed within 1 s after ${kind.title}`, async function () {
        if (kind.setup) {
          const before = changed.calls;
          await client.query(kind.setup);
          await eventually('the setup is signalled', 1000, () => changed.calls > before);
        }
        const before = changed.calls;
        await client.query(kind.sql);
        await eventually(`changed after ${kind.title}`, 1000, () => changed.calls > before);
      });
    }

    it('does not call changed for statements that leave the three tables alone', async function () {
      const before = changed.calls;
      await client.query('SELECT * FROM oingate.tenants');
      await client.query(`INSERT INTO oingate.schema_migrations (version) VALUES ('zzz-test')`);
      await client.query(`NOTIFY some_other_channel`);
      await sleep(300);
      expect(changed.calls).to.equal(before);
    });

    it('sends a notification payload that names the OIN and carries no row data', async function () {
      const listener = await connect(url);
      try {
        const payloads: string[] = [];
        listener.on('notification', (n) => payloads.push(n.payload ?? ''));
        await listener.query('LISTEN oingate_config');
        const secret = 'row-secret-'.repeat(100);
        await client.query(`
          INSERT INTO oingate.tenants (oin, name) VALUES ('payload', '${secret}');
          INSERT INTO oingate.tenant_keys (oin, kid, alg, secret) VALUES ('payload', 'k', 'HS256', '${secret}');
        `);
        await eventually('a notification arrives', 1000, () => payloads.length > 0);
        // Both statements name the same OIN: PostgreSQL folds the two identical payloads into one.
        expect(payloads).to.deep.equal(['oingate:1:["payload"]']);
      } finally {
        await listener.end();
        await client.query(`DELETE FROM oingate.tenants`);
      }
    });

    it('calls changed every resyncSeconds without any change in the database', async function () {
      const resync = counter();
      const s = source(url, { resyncSeconds: 0.1 });
      await s.watch(resync.fn);
      // One call for the connect, then one per 100 ms.
      await eventually('at least 4 resync calls', 1000, () => resync.calls >= 5);
    });

    it('after close() stops calling changed and leaves no listening connection behind', async function () {
      const other = counter();
      const s = source(url);
      await s.watch(other.fn);
      await eventually('connected', 2000, async () => other.calls === 1 && (await listenerPids(admin, url)).length === 2);
      await s.close();
      await s.close();
      await eventually('only the shared source still listens', 2000, async () => (await listenerPids(admin, url)).length === 1);
      const before = changed.calls;
      await client.query(`INSERT INTO oingate.tenants (oin) VALUES ('after-close')`);
      await eventually('the other source still sees the change', 1000, () => changed.calls > before);
      expect(other.calls).to.equal(1);
      await client.query(`DELETE FROM oingate.tenants`);
    });
  });

  describe('connection loss', function () {
    it('reconnects after its backend is terminated and calls changed again, with only a notice in the log', async function () {
      const url = await freshDatabase();
      const log = captureLogger();
      const changed = counter();
      const src = source(url, { logger: log });
      await src.watch(changed.fn);
      await eventually('connected', 2000, () => changed.calls === 1);
      const [pid] = await listenerPids(admin, url);
      expect(pid).to.be.a('number');
      // No change in the database: the call after reconnecting is the full reload.
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await eventually('changed after reconnecting', 3000, () => changed.calls === 2);
      const pids = await listenerPids(admin, url);
      expect(pids).to.have.length(1);
      expect(pids[0]).not.to.equal(pid);
      expect(log.count('warn', /listener connection lost/)).to.equal(1);
      expect(log.count('info', /reconnected/)).to.equal(1);
      // And it listens on the new connection.
      const client = await connect(url);
      try {
        await client.query(`INSERT INTO oingate.tenants (oin) VALUES ('x')`);
        await eventually('changed by a notification on the new connection', 1000, () => changed.calls === 3);
      } finally {
        await client.end();
      }
    });

    it('reloads in full after reconnecting: a change made while it could not connect is seen', async function () {
      const url = await freshDatabase();
      const database = new URL(url).pathname.slice(1);
      const log = captureLogger();
      const changed = counter();
      const src = source(url, { logger: log });
      const writer = await connect(url);
      try {
        await src.watch(changed.fn);
        await eventually('connected', 2000, () => changed.calls === 1);
        await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
        const [pid] = await listenerPids(admin, url);
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await eventually('two failed reconnects', 3000, () => log.count('warn', /cannot connect/) >= 2);
        await writer.query(`INSERT INTO oingate.tenants (oin, name) VALUES ('offline', 'made while disconnected')`);
        await sleep(100);
        expect(changed.calls, 'no notification reaches a disconnected listener').to.equal(1);
        await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
        await eventually('changed after reconnecting', 8000, () => changed.calls === 2);
        const doc = (await src.load()) as { tenants: { oin: string; name: string }[] };
        expect(doc.tenants.map((t) => [t.oin, t.name])).to.deep.equal([['offline', 'made while disconnected']]);
      } finally {
        await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
        await writer.end();
      }
    });

    it('notices a silently dead connection through its keep-alive query and reconnects', async function () {
      const url = await freshDatabase();
      const target = new URL(url);
      // A TCP proxy whose existing connections can be frozen: bytes stop
      // flowing, but neither side sees an error or a close.
      const pairs: [net.Socket, net.Socket][] = [];
      const proxy = net.createServer((down) => {
        const up = net.connect(Number(target.port), target.hostname);
        down.on('error', () => undefined);
        up.on('error', () => undefined);
        down.pipe(up);
        up.pipe(down);
        pairs.push([down, up]);
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      const proxied = new URL(url);
      proxied.port = String((proxy.address() as net.AddressInfo).port);
      const log = captureLogger();
      const changed = counter();
      const src = source(proxied.toString(), { logger: log, keepAliveMs: 200 });
      try {
        await src.watch(changed.fn);
        await eventually('connected', 2000, () => changed.calls === 1);
        expect(pairs).to.have.length(1);
        for (const [down, up] of pairs) {
          down.unpipe(up);
          up.unpipe(down);
          down.pause();
          up.pause();
        }
        await eventually('changed after reconnecting', 3000, () => changed.calls === 2);
        expect(pairs).to.have.length(2);
        expect(pairs[0]![0].destroyed || pairs[0]![0].readableEnded).to.equal(false, 'the frozen socket never closed');
        expect(log.count('warn', /listener connection lost/)).to.equal(1);
      } finally {
        for (const [down, up] of pairs) {
          down.destroy();
          up.destroy();
        }
        await src.close();
        await new Promise((r) => proxy.close(r));
      }
    });
  });

  describe('server outage', function () {
    it('while the server is down: load rejects without the password and the listener keeps retrying; after restart it reconnects and calls changed', async function () {
      this.timeout(30000);
      const url = withPassword(await freshDatabase());
      const log = captureLogger();
      const changed = counter();
      const src = source(url, { logger: log });
      expect(src.description).to.match(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/\w+$/).and.not.include(PASSWORD);
      await src.watch(changed.fn);
      await eventually('connected', 2000, () => changed.calls === 1);
      await src.load();
      await db.stop();
      try {
        await eventually('connection loss noticed', 2000, () => log.count('warn', /listener connection lost/) === 1);
        await eventually('at least two failed reconnects', 3000, () => log.count('warn', /cannot connect/) >= 2);
        const err = await src.load().then(
          () => null,
          (e: unknown) => e as Error,
        );
        expect(err).to.be.instanceOf(Error);
        expect(err!.message).to.include(src.description);
        expect(inspect(err)).not.to.include(PASSWORD);
        expect(changed.calls).to.equal(1);
      } finally {
        await db.start();
      }
      await eventually('changed after the server is back', 8000, () => changed.calls === 2);
      expect(log.count('info', /reconnected/)).to.equal(1);
      expect(await src.load()).to.deep.equal({ tenants: [] });
      expect(log.text()).not.to.include(PASSWORD);
    });

    it('starts with the server down: watch resolves promptly, and changed is called once the server is up', async function () {
      this.timeout(30000);
      const url = withPassword(await freshDatabase());
      const log = captureLogger();
      const changed = counter();
      await db.stop();
      const src = source(url, { logger: log });
      try {
        const started = Date.now();
        await src.watch(changed.fn);
        expect(Date.now() - started).to.be.below(6000);
        expect(changed.calls).to.equal(0);
        expect(log.count('warn', /cannot connect/)).to.equal(1);
        const err = await src.load().then(
          () => null,
          (e: unknown) => e as Error,
        );
        expect(inspect(err)).not.to.include(PASSWORD);
      } finally {
        await db.start();
      }
      await eventually('changed once the server is up', 8000, () => changed.calls === 1);
      expect(log.count('info', /connected/)).to.equal(1);
      expect(await src.load()).to.deep.equal({ tenants: [] });
      expect(log.text()).not.to.include(PASSWORD);
    });

    it('stops retrying when closed during an outage', async function () {
      const url = await freshDatabase();
      const database = new URL(url).pathname.slice(1);
      const log = captureLogger();
      await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
      const src = source(url, { logger: log });
      try {
        await src.watch(() => undefined);
        await eventually('retrying', 2000, () => log.count('warn', /cannot connect/) >= 2);
        await src.close();
        const attempts = log.lines.length;
        await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
        await sleep(500);
        expect(log.lines.length).to.equal(attempts);
        expect(await listenerPids(admin, url)).to.deep.equal([]);
      } finally {
        await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
      }
    });
  });

  describe('password hygiene', function () {
    it('describes the store from its parsed config as postgres://user@host:port/db, with no password and no query parameter', function () {
      const cases: [string, string][] = [
        ['postgres://oingate:secret@db:5432/gate', 'postgres://oingate@db:5432/gate'],
        ['postgresql://oingate:p%40ss%2Fw@db/gate?sslmode=require', 'postgres://oingate@db/gate'],
        ['postgres://oingate@db:5432/gate', 'postgres://oingate@db:5432/gate'],
        ['postgres://db/gate', 'postgres://db/gate'],
        ['postgres://:secret@db/gate', 'postgres://db/gate'],
        ['postgres://u@db/gate?password=secret&application_name=x', 'postgres://u@db/gate'],
        ['postgres://u@db/gate?sslmode=verify-full&password=secret', 'postgres://u@db/gate'],
        ['postgres://u@db/gate?pass%77ord=secret', 'postgres://u@db/gate'],
        ['postgres://u@db/gate?sslpassword=secret&sslkey=/k.pem', 'postgres://u@db/gate'],
        ['postgres://u:secret@[2001:db8::1]:5432/gate', 'postgres://u@[2001:db8::1]:5432/gate'],
        ['postgres://u@db/gate?user=other', 'postgres://other@db/gate'],
        ['postgres:///gate?host=/var/run/postgresql', 'postgres://(socket /var/run/postgresql)/gate'],
        ['postgres://u:secret@db:notaport/gate', 'postgres://(unparseable connection string)'],
      ];
      for (const [input, expected] of cases) expect(describeConnectionString(input), input).to.equal(expected);
    });

    it('hides a user name that equals the password', function () {
      expect(describeConnectionString('postgres://db/gate?user=hunter2hunter2&password=hunter2hunter2')).to.equal('postgres://***@db/gate');
    });

    it('scrubs every form of every password parameter from a text, the userinfo one included', function () {
      const url = 'postgres://u:inf%6F-pw@db/gate?pass%77ord=q%2Dpw&sslpassword=ssl+pw&password=plain-pw';
      const scrub = passwordScrubber(url);
      const text = `connect ${url} failed: info-pw inf%6F-pw q-pw q%2Dpw ssl pw ssl+pw plain-pw`;
      const out = scrub(text);
      for (const secret of ['info-pw', 'inf%6F-pw', 'q-pw', 'q%2Dpw', 'ssl pw', 'ssl+pw', 'plain-pw']) expect(out).not.to.include(secret);
      expect(out).to.include('connect postgres://u@db/gate failed');
    });

    it('refuses a malformed connection string with an error free of the password', function () {
      let caught: unknown;
      try {
        new PostgresSource({ connectionString: `postgres://u:${PASSWORD}@db:notaport/gate`, resyncSeconds: 60 });
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(Error);
      expect((caught as Error).message).to.include('postgres://(unparseable connection string)');
      expect(inspect(caught)).not.to.include(PASSWORD);
    });

    it('keeps the password out of errors that quote it, in raw and percent-decoded form', async function () {
      // The server quotes an unknown role name back; make that name the password.
      const port = new URL(db.url).port;
      const src = source(`postgres://postgres:pa%24%24w0rd@127.0.0.1:${port}/postgres?user=pa%24%24w0rd`);
      const err = await src.load().then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err?.message).to.match(/role "\*\*\*" does not exist/);
      expect(inspect(err)).not.to.include('pa$$w0rd');
      expect(src.description).not.to.include('pa$$w0rd');
    });
  });
});
