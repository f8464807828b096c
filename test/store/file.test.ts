import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { buildSnapshot } from '../../src/model/snapshot.ts';
import { FileSource } from '../../src/store/file.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  call,
  eventually,
  OIN_A,
  OIN_B,
  send,
  signToken,
  startGate,
  tokenFor,
  twoTenants,
  writeWhitelistFile,
  type Gate,
  type TenantSpec,
} from '../support/gate.ts';

/** The file store picks up every kind of change within this. */
const WITHIN_MS = 2_000;

const OIN_C = '00000001000000000003';
const SECRET_C = 'tenant-c-secret-0123456789abcdefghijkl';

function tenantA(): TenantSpec {
  return twoTenants()[0] as TenantSpec;
}
function tenantB(): TenantSpec {
  return twoTenants()[1] as TenantSpec;
}
function tenantC(overrides: Partial<TenantSpec> = {}): TenantSpec {
  return { oin: OIN_C, name: 'C', cidrs: ['127.0.0.0/8', '::1/128'], keys: [{ kid: 'c1', alg: 'HS256', secret: SECRET_C }], ...overrides };
}

function tokenOf(oin: string): string {
  return oin === OIN_C ? signToken({ oin }, SECRET_C, { algorithm: 'HS256', keyid: 'c1' }) : tokenFor(oin);
}

async function statusOf(gate: Gate, oin: string): Promise<number> {
  return (await call(gate.url, { oin }, tokenOf(oin))).status;
}

/** Asserts, right now, which tenants the gate lets through and which it refuses. */
async function expectEnforced(gate: Gate, allowed: string[], refused: string[]): Promise<void> {
  for (const oin of allowed) expect(await statusOf(gate, oin), `${oin} allowed`).to.equal(200);
  for (const oin of refused) expect(await statusOf(gate, oin), `${oin} refused`).to.equal(403);
}

/** Polls until the whitelist is enforced; fails unless that happens within 2 s. */
async function enforcedWithin(gate: Gate, allowed: string[], refused: string[]): Promise<number> {
  const took = await eventually(() => expectEnforced(gate, allowed, refused), WITHIN_MS, 20);
  expect(took, 'ms until enforced').to.be.at.most(WITHIN_MS);
  return took;
}

async function readyz(gate: Gate): Promise<Record<string, unknown>> {
  const res = await send(gate.adminUrl, { method: 'GET', path: '/readyz' });
  return res.json();
}

async function refusedReloads(gate: Gate): Promise<number> {
  const res = await send(gate.adminUrl, { method: 'GET', path: '/metrics' });
  // Refusals of either cause (invalid content, unreadable file).
  const counts = [...res.text.matchAll(/^oingate_reloads_refused_total\{cause="(?:invalid|unreachable)"\} (\d+)$/gm)];
  expect(counts, 'oingate_reloads_refused_total by cause in /metrics').to.have.length(2);
  return counts.reduce((sum, m) => sum + Number(m[1]), 0);
}

function json(tenants: TenantSpec[]): string {
  return JSON.stringify({ tenants }, null, 2);
}

describe('file store: live reload', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate(twoTenants());
  });
  after(() => gate.close());

  it('enforces an in-place edit (same file, same inode) within 2 s: a tenant added, then removed', async () => {
    await expectEnforced(gate, [OIN_A, OIN_B], [OIN_C]);
    const before = await readyz(gate);

    await writeFile(gate.file, json([tenantA(), tenantB(), tenantC()]));
    await enforcedWithin(gate, [OIN_A, OIN_B, OIN_C], []);
    const added = await readyz(gate);
    expect(added['tenants']).to.equal(3);
    expect(added['version']).to.not.equal(before['version']);

    await writeFile(gate.file, json([tenantA(), tenantB()]));
    await enforcedWithin(gate, [OIN_A, OIN_B], [OIN_C]);
    // Same facts as at the start: the version is the same digest again.
    await eventually(async () => {
      expect((await readyz(gate))['version']).to.equal(before['version']);
    }, WITHIN_MS);
  });

  it('enforces an atomic rename (write a temp file, rename it over) within 2 s', async () => {
    await writeWhitelistFile(gate.file, [tenantB(), tenantC()]);
    await enforcedWithin(gate, [OIN_B, OIN_C], [OIN_A]);

    // Like `mv` from elsewhere in the directory, without a .tmp suffix.
    const elsewhere = join(gate.dir, 'next.json');
    await writeFile(elsewhere, json([tenantA(), tenantB()]));
    await rename(elsewhere, gate.file);
    await enforcedWithin(gate, [OIN_A, OIN_B], [OIN_C]);
  });

  it('enforces a changed CIDR list within 2 s (a tenant moved off loopback is refused)', async () => {
    await writeWhitelistFile(gate.file, [tenantA(), { ...tenantB(), cidrs: ['192.0.2.0/24'] }]);
    await enforcedWithin(gate, [OIN_A], [OIN_B]);
    await writeWhitelistFile(gate.file, twoTenants());
    await enforcedWithin(gate, [OIN_A, OIN_B], []);
  });
});

describe('file store: Kubernetes ConfigMap symlink swap', () => {
  let gate: Gate;
  let dir: string;

  /** Writes a new timestamped directory and swaps `..data` to it, as the kubelet does. */
  async function publish(version: string, tenants: TenantSpec[], first = false): Promise<void> {
    await mkdir(join(dir, version));
    await writeFile(join(dir, version, 'whitelist.json'), json(tenants));
    if (first) {
      await symlink(version, join(dir, '..data'));
      await symlink(join('..data', 'whitelist.json'), join(dir, 'whitelist.json'));
      return;
    }
    await symlink(version, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-configmap-'));
    await publish('..2026_01', twoTenants(), true);
    gate = await startGate(null, { OINGATE_STORE: `file:${join(dir, 'whitelist.json')}` });
  });
  after(async () => {
    await gate.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads the whitelist through the symlinks at start-up', async () => {
    const ready = await readyz(gate);
    expect(ready['ready']).to.equal(true);
    expect(ready['store']).to.equal(`file:${join(dir, 'whitelist.json')}`);
    await expectEnforced(gate, [OIN_A, OIN_B], [OIN_C]);
  });

  it('enforces a ..data symlink swap within 2 s, and keeps it after the old directory is removed', async () => {
    await publish('..2026_02', [tenantB(), tenantC()]);
    await enforcedWithin(gate, [OIN_B, OIN_C], [OIN_A]);
    await rm(join(dir, '..2026_01'), { recursive: true });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await expectEnforced(gate, [OIN_B, OIN_C], [OIN_A]);
    expect((await readyz(gate))['lastError']).to.equal(null);
  });

  it('enforces a second swap too (the watch survives the first)', async () => {
    await publish('..2026_03', [tenantA()]);
    await enforcedWithin(gate, [OIN_A], [OIN_B, OIN_C]);
  });
});

describe('file store: faults keep the last good whitelist', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate(twoTenants());
  });
  after(() => gate.close());

  beforeEach(async () => {
    // Back to the good whitelist (A and B), with no error pending.
    await rm(gate.file, { recursive: true, force: true });
    await writeWhitelistFile(gate.file, twoTenants());
    await eventually(async () => {
      const ready = await readyz(gate);
      expect(ready['lastError']).to.equal(null);
      expect(ready['tenants']).to.equal(2);
      await expectEnforced(gate, [OIN_A, OIN_B], [OIN_C]);
    }, WITHIN_MS);
  });

  /**
   * Applies a fault and checks it is refused: the refused-reload counter goes
   * up, /readyz shows the error, and A (absent from the bad document) is still
   * allowed while C (present in it) is still refused.
   */
  async function expectRefused(fault: () => Promise<void>, errorIncludes: string): Promise<void> {
    const refusedBefore = await refusedReloads(gate);
    const before = await readyz(gate);
    await fault();
    await eventually(async () => {
      expect(await refusedReloads(gate)).to.be.greaterThan(refusedBefore);
      const ready = await readyz(gate);
      expect(ready['lastError']).to.be.a('string').and.include(errorIncludes);
    }, WITHIN_MS);
    const after = await readyz(gate);
    expect(after['ready']).to.equal(true);
    expect(after['version']).to.equal(before['version']);
    expect(after['tenants']).to.equal(2);
    await expectEnforced(gate, [OIN_A, OIN_B], [OIN_C]);
  }

  it('refuses a half-written file and keeps the old whitelist; the completed file is then enforced', async () => {
    const text = json([tenantB(), tenantC()]);
    const half = Math.floor(text.length / 2);
    await expectRefused(() => writeFile(gate.file, text.slice(0, half)), 'whitelist.json');
    await appendFile(gate.file, text.slice(half));
    await enforcedWithin(gate, [OIN_B, OIN_C], [OIN_A]);
    expect((await readyz(gate))['lastError']).to.equal(null);
  });

  it('refuses invalid JSON, naming line and column', async () => {
    const text = json([tenantB(), tenantC()]).replace('"cidrs"', '"cidrs",');
    await expectRefused(() => writeWhitelistFile(gate.file, text), 'line');
    expect((await readyz(gate))['lastError']).to.match(/line \d+ column \d+/);
  });

  it('refuses a duplicate key that JSON.parse would silently accept', async () => {
    const text = `{"tenants": ${JSON.stringify(twoTenants())}, "tenants": ${JSON.stringify([tenantB(), tenantC()])}}`;
    expect(JSON.parse(text)).to.have.property('tenants').with.length(2);
    await expectRefused(() => writeWhitelistFile(gate.file, text), 'duplicate key');
  });

  it('refuses a bad CIDR', async () => {
    await expectRefused(
      () => writeWhitelistFile(gate.file, [tenantB(), tenantC({ cidrs: ['127.0.0.0/8', '127.0.0.1/8'] })]),
      'tenants[1].cidrs[1]',
    );
  });

  it('refuses a /0 range', async () => {
    await expectRefused(() => writeWhitelistFile(gate.file, [tenantB(), tenantC({ cidrs: ['0.0.0.0/0'] })]), '/0');
  });

  it('refuses an HS secret under 32 bytes', async () => {
    await expectRefused(
      () => writeWhitelistFile(gate.file, [tenantB(), tenantC({ keys: [{ kid: 'c1', alg: 'HS256', secret: 'only-thirty-one-bytes-long.....' }] })]),
      '31 bytes',
    );
    expect((await readyz(gate))['lastError']).to.not.include('only-thirty-one');
  });

  it('refuses a duplicate OIN', async () => {
    await expectRefused(() => writeWhitelistFile(gate.file, [tenantB(), tenantC(), tenantC({ name: 'C again' })]), 'duplicate OIN');
  });

  it('refuses a duplicate kid', async () => {
    const key = { kid: 'c1', alg: 'HS256', secret: SECRET_C };
    await expectRefused(() => writeWhitelistFile(gate.file, [tenantB(), tenantC({ keys: [key, { ...key }] })]), 'duplicate kid');
  });

  it('refuses an unreadable file (a directory in its place)', async () => {
    await expectRefused(async () => {
      await rm(gate.file);
      await mkdir(gate.file);
    }, 'EISDIR');
  });

  it('keeps the old whitelist when the file is deleted, and loads it when recreated', async () => {
    await expectRefused(() => rm(gate.file), 'ENOENT');
    await writeFile(gate.file, json([tenantB(), tenantC()]));
    await enforcedWithin(gate, [OIN_B, OIN_C], [OIN_A]);
    expect((await readyz(gate))['lastError']).to.equal(null);
  });

  it('recovers from a refused file without a restart: the next good file is enforced and lastError cleared', async () => {
    await expectRefused(() => writeWhitelistFile(gate.file, '{"tenants": "nope"}'), 'tenants');
    await writeWhitelistFile(gate.file, [tenantA(), tenantC()]);
    await enforcedWithin(gate, [OIN_A, OIN_C], [OIN_B]);
    expect((await readyz(gate))['lastError']).to.equal(null);
  });
});

describe('FileSource revision', () => {
  it('follows the content, not the file identity: same size and mtime but other bytes is another revision', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oingate-revision-'));
    try {
      const file = join(dir, 'whitelist.json');
      await writeFile(file, '{"tenants":[{"oin":"00000001000000000001","cidrs":[]}]}');
      const source = new FileSource(file);
      const first = await source.revision();
      expect(await source.revision()).to.equal(first);
      const { mtime } = await stat(file);
      await writeFile(file, '{"tenants":[{"oin":"00000001000000000002","cidrs":[]}]}');
      await utimes(file, mtime, mtime);
      expect(await source.revision()).to.not.equal(first);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('FileSource.loadWithRevision', function () {
  this.timeout(30_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-file-revision-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('gives the digest of exactly the bytes it parsed, read on the main thread, in the reading thread or streamed from it', async () => {
    const file = join(dir, 'whitelist.json');
    const text = JSON.stringify({ tenants: Array.from({ length: 5 }, (_, i) => ({ oin: `0000000100000000000${i}`, cidrs: ['10.0.0.0/8'] })) });
    await writeFile(file, text);
    const digest = createHash('sha256').update(text).digest('hex');
    for (const options of [{}, { workerFromBytes: 0 }, { workerFromBytes: 0, tenantsPerChunk: 1 }]) {
      const source = new FileSource(file, options);
      const { document, revision } = await source.loadWithRevision();
      expect((await buildSnapshot(document, { oinPattern: /^[0-9]{20}$/ })).tenants.size, JSON.stringify(options)).to.equal(5);
      expect(await revision, JSON.stringify(options)).to.equal(digest);
      expect(await source.revision(), 'what revision() reads for the same file').to.equal(digest);
      await source.close();
    }
  });

  it('gives no revision for a read the reading thread refused', async () => {
    const file = join(dir, 'half.json');
    await writeFile(file, '{"tenants":[{"oin":"00000001000000000001","cidrs":[]}');
    const source = new FileSource(file, { workerFromBytes: 0, tenantsPerChunk: 1 });
    const read = source.loadWithRevision().then((r) => r.revision);
    const outcome = await read.then((revision) => revision, (error: Error) => error.message);
    // Refused before any tenant was handed over (the array never closed), or after: no revision either way.
    expect(outcome === undefined || /unexpected end of input/.test(String(outcome)), String(outcome)).to.equal(true);
    await source.close();
  });
});
