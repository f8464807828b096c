/**
 * The file store reading in its worker thread, through the real service:
 * whatever goes wrong with the read (a half-written file, a thread out of
 * memory, a thread that cannot start, a stop), the reload is refused and the
 * last good whitelist stays enforced.
 */
import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSnapshot } from '../../src/model/snapshot.ts';
import { FileSource } from '../../src/store/file.ts';
import { readWhitelistFile } from '../../src/store/read-file.ts';
import { makeTenants, whitelistText } from '../bench/lib/fixtures.ts';
import { DEFAULT_PATTERN } from '../model/helpers.ts';
import { oneHugeTenantText } from '../support/heavy-file.ts';
import { call, eventually, OIN_A, send, signToken, startGate, tokenFor, twoTenants, type Gate, type TenantSpec } from '../support/gate.ts';

const OIN_C = '00000001000000000003';
const SECRET_C = 'tenant-c-secret-0123456789abcdefghijkl';
const TENANT_C: TenantSpec = { oin: OIN_C, name: 'C', cidrs: ['127.0.0.0/8'], keys: [{ kid: 'c1', alg: 'HS256', secret: SECRET_C }] };

interface Readyz {
  version: string | null;
  tenants: number;
  lastError: string | null;
}

async function readyz(gate: Gate): Promise<Readyz> {
  return (await send(gate.adminUrl, { method: 'GET', path: '/readyz' })).json() as unknown as Readyz;
}

async function statusOf(gate: Gate, oin: string): Promise<number> {
  const token = oin === OIN_C ? signToken({ oin }, SECRET_C, { algorithm: 'HS256', keyid: 'c1' }) : tokenFor(oin);
  return (await call(gate.url, { oin }, token)).status;
}

/** Waits for the refusal, then checks that the whitelist before it is the one enforced. */
async function refusedKeepingLastGood(gate: Gate, before: Readyz, error: string): Promise<void> {
  await eventually(async () => {
    expect((await readyz(gate)).lastError).to.equal(error);
  }, 20_000);
  const now = await readyz(gate);
  expect(now.version).to.equal(before.version);
  expect(now.tenants).to.equal(before.tenants);
  expect(await statusOf(gate, OIN_A)).to.equal(200);
  expect(await statusOf(gate, OIN_C)).to.equal(403);
}

/** Writes a good file with tenant C added and waits until C is let through and the error is gone. */
async function recovers(gate: Gate): Promise<void> {
  await gate.writeWhitelist([...twoTenants(), TENANT_C]);
  await eventually(async () => {
    expect(await statusOf(gate, OIN_C)).to.equal(200);
    expect((await readyz(gate)).lastError).to.equal(null);
  }, 20_000);
}

describe('file store reading in a worker thread', function () {
  this.timeout(90_000);

  describe('with every file read in the thread', () => {
    let gate: Gate;
    before(async () => {
      // The first load hands each tenant over as it is parsed; these reloads read the whole file first.
      gate = await startGate(twoTenants(), {}, { fileOptions: { workerFromBytes: 0, workerHeapMb: 16, tenantsPerChunk: 1 } });
    });
    after(() => gate.close());

    it('refuses a half-written file with the main thread’s words, keeps the last good whitelist, then loads the whole file', async () => {
      const before = await readyz(gate);
      expect(before.tenants).to.equal(2);
      const whole = JSON.stringify({ tenants: [...twoTenants(), TENANT_C] }, null, 2);
      // In place, as a plain write leaves it halfway.
      await writeFile(gate.file, whole.slice(0, Math.floor(whole.length / 2)));
      const words = await readWhitelistFile(gate.file).then(
        () => expect.fail('half a file parsed'),
        (error: Error) => error.message,
      );
      await refusedKeepingLastGood(gate, before, words);
      await writeFile(gate.file, whole);
      await eventually(async () => {
        expect(await statusOf(gate, OIN_C)).to.equal(200);
        expect((await readyz(gate)).lastError).to.equal(null);
      }, 20_000);
      await gate.writeWhitelist(twoTenants());
      await eventually(async () => {
        expect(await statusOf(gate, OIN_C)).to.equal(403);
      }, 20_000);
    });

    it('refuses a file whose parse the thread’s heap cannot hold, keeps the last good whitelist, then loads the next good file', async () => {
      const before = await readyz(gate);
      await gate.writeWhitelist(oneHugeTenantText());
      await refusedKeepingLastGood(gate, before, `cannot read ${gate.file}: the reading thread ran out of its 16 MiB heap`);
      const metrics = (await send(gate.adminUrl, { method: 'GET', path: '/metrics' })).text;
      expect(metrics).to.match(/^oingate_reloads_refused_total\{cause="unreachable"\} [1-9]/m);
      await recovers(gate);
    });
  });

  it('stays unready on a half-written first file, whose first tenants were already being built, then loads the whole file', async () => {
    const whole = JSON.stringify({ tenants: [...twoTenants(), TENANT_C] }, null, 2);
    const cut = whole.slice(0, Math.floor(whole.length * 0.7));
    const gate = await startGate(cut, {}, { fileOptions: { workerFromBytes: 0, workerHeapMb: 16, tenantsPerChunk: 1 } });
    try {
      const words = await readWhitelistFile(gate.file).then(
        () => expect.fail('part of a file parsed'),
        (error: Error) => error.message,
      );
      const status = await send(gate.adminUrl, { method: 'GET', path: '/readyz' });
      expect(status.status).to.equal(503);
      expect((status.json() as unknown as Readyz).lastError).to.equal(words);
      expect(await statusOf(gate, OIN_A)).to.equal(503);
      await writeFile(gate.file, whole);
      await eventually(async () => {
        expect(await statusOf(gate, OIN_C)).to.equal(200);
      }, 20_000);
    } finally {
      await gate.close();
    }
  });

  it('refuses a file when the thread cannot start, keeping the last good whitelist read on the main thread', async () => {
    // Small files are read on the main thread; a larger one goes to a thread whose 1 MiB heap cannot even start it.
    const gate = await startGate(twoTenants(), {}, { fileOptions: { workerFromBytes: 2_000, workerHeapMb: 1 } });
    try {
      const before = await readyz(gate);
      const large = [...twoTenants(), ...Array.from({ length: 20 }, (_, i) => ({ ...TENANT_C, oin: `0000000200000000${String(i).padStart(4, '0')}` }))];
      await gate.writeWhitelist(large);
      await refusedKeepingLastGood(gate, before, `cannot read ${gate.file}: the reading thread ran out of its 1 MiB heap`);
      await recovers(gate);
    } finally {
      await gate.close();
    }
  });

  it('stops the reading thread when the store closes, refusing the read it was doing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oingate-worker-'));
    const file = join(dir, 'large.json');
    try {
      await writeFile(file, whitelistText(makeTenants(20_000)));
      const stopped = `cannot read ${file}: the reading thread was stopped`;
      const source = new FileSource(file, { workerFromBytes: 0 });
      // Whether the read still waits for its first tenants or has handed them to the build, the build fails.
      const load = source.load().then((document) => buildSnapshot(document, { oinPattern: DEFAULT_PATTERN }));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await source.close();
      await load.then(
        () => expect.fail('a closed store gave a whitelist'),
        (error: Error) => expect(error.message).to.equal(stopped),
      );
      // Closed once the first tenants of a first load are being built.
      const again = new FileSource(file, { workerFromBytes: 0, tenantsPerChunk: 1 });
      const { document } = await again.loadWithRevision();
      const build = buildSnapshot(document, { oinPattern: DEFAULT_PATTERN });
      await again.close();
      await build.then(
        () => expect.fail('a closed store gave a whitelist'),
        (error: Error) => expect(error.message).to.equal(stopped),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
