import { expect } from 'chai';
import Koa from 'koa';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGate, type Gate } from '../../src/index.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { LogCapture, send, signToken, startEmbedded, writeWhitelistFile, type TenantSpec } from '../support/gate.ts';
import { headerForms } from '../tls/header-forms.ts';
import { PKI_OIN_A, PKI_OIN_B, testPki, type Pki } from '../support/pki.ts';
import { tlsCall } from '../support/tls-client.ts';

/**
 * The gate embedded behind Koa's own HTTPS server (contract §8-§9): the
 * middleware reads the peer certificate from the socket and verifies it
 * against its own tlsClientCa and tlsCrl, never trusting the application
 * server's handshake verdict.
 */
describe('the embedded gate behind the application’s own HTTPS server', () => {
  let pki: Pki;
  let gate: Gate;
  let server: Server;
  let url: string;
  let dir: string;
  const logs = new LogCapture();
  const seen: unknown[] = [];
  const secretB = 'embed-tls-secret-b-0123456789abcdefghijk';

  before(async () => {
    pki = await testPki();
    dir = await mkdtemp(join(tmpdir(), 'oingate-embed-tls-'));
    const file = join(dir, 'whitelist.json');
    const tenants: TenantSpec[] = [
      { oin: PKI_OIN_A, cidrs: ['127.0.0.0/8'], authentication: 'certificate' } as TenantSpec,
      { oin: PKI_OIN_B, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'b1', alg: 'HS256', secret: secretB }] },
    ];
    await writeWhitelistFile(file, tenants);
    gate = await createGate({ store: `file:${file}`, tlsClientCa: pki.caBundleFile, tlsCrl: pki.crlFile, logger: createLogger('info', logs) });
    const app = new Koa();
    app.silent = true;
    app.use(gate.middleware);
    app.use((ctx) => {
      seen.push(ctx.state['oingate']);
      ctx.body = { ok: true };
    });
    // The application's server trusts the unrelated root as well: its handshake verdict must not count.
    server = createServer(
      { cert: pki.server.cert, key: pki.server.key, ca: [pki.caBundle, pki.unrelatedRoot.cert], requestCert: true, rejectUnauthorized: false },
      app.callback(),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await gate.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('allows a certificate tenant on its verified certificate, with kid and claims null', async () => {
    const answer = await tlsCall(url, { ca: pki.root.cert, client: pki.clients.valid, body: JSON.stringify({ oin: PKI_OIN_A }) });
    expect(answer.status).to.equal(200);
    expect(seen.at(-1)).to.deep.equal({ oin: PKI_OIN_A, clientIp: '127.0.0.1', kid: null, claims: null });
  });

  it('refuses a certificate its own CAs do not verify, whatever the application server accepted', async () => {
    const answer = await tlsCall(url, { ca: pki.root.cert, client: pki.clients.unrelated, body: JSON.stringify({ oin: PKI_OIN_A }) });
    expect(answer.status).to.equal(403);
    expect(logs.last()?.['reason']).to.equal('certificate_invalid');
  });

  it('refuses a revoked certificate and one naming another OIN, and a certificate tenant without one', async () => {
    expect((await tlsCall(url, { ca: pki.root.cert, client: pki.clients.revoked, body: JSON.stringify({ oin: PKI_OIN_A }) })).status).to.equal(403);
    expect(logs.last()?.['reason']).to.equal('certificate_invalid');
    const token = signToken({ oin: PKI_OIN_B }, secretB, { algorithm: 'HS256', keyid: 'b1' });
    const mismatch = await tlsCall(url, { ca: pki.root.cert, client: pki.clients.valid, body: JSON.stringify({ oin: PKI_OIN_B }), headers: { authorization: `Bearer ${token}` } });
    expect(mismatch.status).to.equal(403);
    expect(logs.last()?.['reason']).to.equal('certificate_mismatch');
    expect((await tlsCall(url, { ca: pki.root.cert, body: JSON.stringify({ oin: PKI_OIN_A }) })).status).to.equal(403);
    expect(logs.last()?.['reason']).to.equal('certificate_missing');
  });

  it('still decides token tenants by their token, certificate or not', async () => {
    const token = signToken({ oin: PKI_OIN_B }, secretB, { algorithm: 'HS256', keyid: 'b1' });
    const answer = await tlsCall(url, { ca: pki.root.cert, body: JSON.stringify({ oin: PKI_OIN_B }), headers: { authorization: `Bearer ${token}` } });
    expect(answer.status).to.equal(200);
    expect((seen.at(-1) as { kid: string }).kid).to.equal('b1');
  });

  it('shows tls in its readiness and refuses the service-only TLS options', async () => {
    expect(gate.readiness().tls).to.deep.include({ certificateNotAfter: null, clientCas: 2, lastError: null });
    const error = await createGate({ store: 'file:x.json', tlsCert: pki.server.certFile }).then(() => undefined, (e: Error) => e);
    expect(error?.message).to.match(/^tlsCert:/);
  });
});

describe('the embedded gate behind a TLS-terminating front proxy (clientCertHeader)', () => {
  it('verifies the header from a trusted proxy against its own CAs and ignores it from any other peer', async () => {
    const pki = await testPki();
    const app = await startEmbedded([{ oin: PKI_OIN_A, cidrs: ['127.0.0.0/8'], authentication: 'certificate' } as TenantSpec], {
      clientCertHeader: 'x-client-cert',
      tlsClientCa: pki.caBundleFile,
      tlsCrl: pki.crlFile,
      trustedProxies: '127.0.0.2/32',
    });
    try {
      const ask = (cert: string, localAddress: string) =>
        send(app.url, { localAddress, headers: { 'content-type': 'application/json', 'x-client-cert': headerForms(cert).traefik }, body: JSON.stringify({ oin: PKI_OIN_A }) });
      expect((await ask(pki.clients.valid.cert, '127.0.0.2')).status).to.equal(200);
      expect(app.hits.at(-1)?.state).to.deep.include({ oin: PKI_OIN_A, kid: null, claims: null });
      expect((await ask(pki.clients.revoked.cert, '127.0.0.2')).status).to.equal(403);
      expect(app.logs.last()?.['reason']).to.equal('certificate_invalid');
      expect((await ask(pki.clients.valid.cert, '127.0.0.1')).status).to.equal(403);
      expect(app.logs.last()?.['reason']).to.equal('certificate_missing');
    } finally {
      await app.close();
    }
  });
});
