/**
 * The store OINGATE_STORE names, as createSource makes it: a large file's
 * first load is validated on its reading thread under the very rules the
 * settings give the build (the OIN pattern, whether certificates can come).
 */
import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamedTenants } from '../../src/model/packed-tenants.ts';
import { decodePrepared } from '../../src/model/prepared.ts';
import { preparationKey } from '../../src/model/snapshot.ts';
import { loadSettings, validationRules } from '../../src/settings.ts';
import { createSource } from '../../src/store/create.ts';
import type { WhitelistSource } from '../../src/store/source.ts';
import { arrived, tenant } from '../model/helpers.ts';

describe('createSource', function () {
  this.timeout(30_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-create-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('has a file store’s first load validated on the reading thread under the settings’ rules', async () => {
    const file = join(dir, 'whitelist.json');
    // Tenant 1 needs a certificate, and these settings give none: refused there, as the build would.
    await writeFile(file, JSON.stringify({ tenants: [tenant(), tenant({ oin: '00000001234567890001', authentication: 'certificate' })] }));
    const settings = loadSettings({ OINGATE_STORE: `file:${file}` });
    const source: WhitelistSource = await createSource(settings, undefined, { workerFromBytes: 0, tenantsPerChunk: 1 });
    try {
      const { document } = await source.loadWithRevision!();
      const tenants = (document as { tenants: StreamedTenants }).tenants;
      expect(tenants).to.be.instanceOf(StreamedTenants);
      await arrived(tenants);
      const key = preparationKey(validationRules(settings));
      expect(decodePrepared(tenants.prepared(0, key)!)).to.have.property('tenant');
      const refused = decodePrepared(tenants.prepared(1, key)!) as { issues: { path: string; message: string }[] };
      expect(refused.issues.map((issue) => issue.path)).to.deep.equal(['tenants[1].authentication']);
      expect(refused.issues[0]!.message).to.match(/needs a client certificate/);
    } finally {
      await source.close();
    }
  });
});
