import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../src/bin.js', import.meta.url));
const OIN = '00000001000000000001';

function check(file: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OINGATE_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'check', file], { env: { ...clean, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('oingate check: tenant authentication', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-check-tls-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('warns about a certificate tenant when no client CA is set, and fails on an unknown authentication', async () => {
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ tenants: [{ oin: OIN, cidrs: ['192.0.2.0/24'], authentication: 'certificate' }] }));
    const warned = await check(good, {});
    expect(warned.code, warned.stderr).to.equal(0);
    expect(warned.stderr).to.include(`warning: tenant ${OIN} needs a client certificate`).and.include('OINGATE_TLS_CLIENT_CA');
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ tenants: [{ oin: OIN, cidrs: ['192.0.2.0/24'], authentication: 'mtls' }] }));
    const refused = await check(bad, {});
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include('tenants[0].authentication').and.include('"mtls"');
  });
});
