import { expect } from 'chai';
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { watchClientCas } from '../../src/tls/client-cas.ts';
import { WatchedMaterial } from '../../src/tls/watched.ts';
import { testPki, type Pki } from '../support/pki.ts';

async function until(done: () => boolean, timeoutMs = 4000): Promise<void> {
  const started = Date.now();
  while (!done() && Date.now() - started < timeoutMs) await new Promise((resolve) => setTimeout(resolve, 25));
}

describe('tls/watched', () => {
  let dir: string;
  const open: Array<{ close(): void }> = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-watched-'));
  });

  afterEach(async () => {
    open.splice(0).forEach((material) => material.close());
    await rm(dir, { recursive: true, force: true });
  });

  async function watchText(file: string, apply?: (next: string) => void): Promise<WatchedMaterial<string>> {
    const material = await WatchedMaterial.open({
      files: [file],
      pollMs: 50,
      load: async () => {
        const text = await readFile(file, 'utf8');
        if (text.startsWith('bad')) throw new Error(`${file}: refused`);
        return text;
      },
      ...(apply ? { apply } : {}),
    });
    open.push(material);
    return material;
  }

  it('picks up an edit in place and an atomic rename', async () => {
    const file = join(dir, 'a.pem');
    await writeFile(file, 'one');
    const material = await watchText(file);
    await writeFile(file, 'two, longer');
    await until(() => material.current === 'two, longer');
    expect(material.current).to.equal('two, longer');
    await writeFile(`${file}.tmp`, 'three');
    await rename(`${file}.tmp`, file);
    await until(() => material.current === 'three');
    expect(material.current).to.equal('three');
  });

  it('picks up a Kubernetes-style symlink swap', async () => {
    await mkdir(join(dir, 'v1'));
    await mkdir(join(dir, 'v2'));
    await writeFile(join(dir, 'v1', 'a.pem'), 'first');
    await writeFile(join(dir, 'v2', 'a.pem'), 'second');
    await symlink('v1', join(dir, '..data'));
    await symlink(join('..data', 'a.pem'), join(dir, 'a.pem'));
    const material = await watchText(join(dir, 'a.pem'));
    expect(material.current).to.equal('first');
    await symlink('v2', join(dir, '..data_new'));
    await rename(join(dir, '..data_new'), join(dir, '..data'));
    await until(() => material.current === 'second');
    expect(material.current).to.equal('second');
  });

  it('keeps the last good material when a new file is refused, and clears the error once one loads', async () => {
    const file = join(dir, 'a.pem');
    await writeFile(file, 'good');
    const material = await watchText(file);
    await writeFile(file, 'bad content');
    await until(() => material.lastError !== null);
    expect(material.lastError).to.match(/a\.pem: refused/);
    expect(material.current).to.equal('good');
    await writeFile(file, 'better');
    await until(() => material.lastError === null);
    expect(material.current).to.equal('better');
  });

  it('keeps the old material when putting the new one in use fails', async () => {
    const file = join(dir, 'a.pem');
    await writeFile(file, 'good');
    const material = await watchText(file, (next) => {
      if (next === 'unusable') throw new Error('context refused');
    });
    await writeFile(file, 'unusable');
    await until(() => material.lastError !== null);
    expect(material.lastError).to.equal('context refused');
    expect(material.current).to.equal('good');
  });

  it('rejects at open when the first load fails', async () => {
    const file = join(dir, 'a.pem');
    await writeFile(file, 'bad');
    const error = await watchText(file).catch((caught: Error) => caught);
    expect(error).to.be.instanceOf(Error);
  });

  describe('client CAs', () => {
    let pki: Pki;
    before(async () => {
      pki = await testPki();
    });

    it('gives a verifier for the current CA bundle and CRL files', async () => {
      const ca = join(dir, 'ca.pem');
      const crl = join(dir, 'crl.pem');
      await writeFile(ca, pki.caBundle);
      await writeFile(crl, pki.rootCrl + pki.intermediateCrlBefore);
      const watched = await watchClientCas({ clientCaFile: ca, crlFile: crl, oinPattern: /^[0-9]{20}$/ }, { pollMs: 50 });
      open.push(watched);
      const { X509Certificate } = await import('node:crypto');
      const revoked = new X509Certificate(pki.clients.revoked.cert);
      expect(watched.current.verifyChain(revoked, [], Date.now())).to.include({ ok: true });
      await writeFile(crl, pki.crl);
      await until(() => !watched.current.verifyChain(revoked, [], Date.now()).ok);
      expect(watched.current.verifyChain(revoked, [], Date.now())).to.include({ ok: false, reason: 'revoked' });
      await writeFile(ca, 'not pem');
      await until(() => watched.lastError !== null);
      expect(watched.lastError).to.match(/ca\.pem: contains no CERTIFICATE block/);
      expect(watched.current.clientCas).to.equal(2);
    });
  });
});
