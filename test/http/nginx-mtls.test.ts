import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { signToken, startGate, type Gate, type TenantSpec } from '../support/gate.ts';
import { startNginxTls, type NginxTls } from '../support/nginx-tls.ts';
import { PKI_OIN_A, PKI_OIN_B, testPki, type Issued, type Pki } from '../support/pki.ts';
import { headerValues, startUpstream, type Upstream } from '../support/upstream.ts';
import { tlsCall } from '../support/tls-client.ts';

const run = promisify(execFile);

/**
 * The README recipe with a real nginx terminating mutual TLS in front of
 * oingate's forward-auth mode; clients are node:https and curl --cert.
 */
describe('nginx terminating mutual TLS in front of forward-auth (README recipe)', function () {
  this.timeout(30_000);
  let pki: Pki;
  let gate: Gate;
  let upstream: Upstream;
  let nginx: NginxTls;
  const secretB = 'nginx-mtls-secret-b-0123456789abcdefghij';

  before(async function () {
    pki = await testPki();
    const tenants: TenantSpec[] = [
      { oin: PKI_OIN_A, cidrs: ['127.0.0.0/8'], authentication: 'certificate' } as TenantSpec,
      { oin: PKI_OIN_B, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'b1', alg: 'HS256', secret: secretB }] },
    ];
    gate = await startGate(tenants, {
      OINGATE_TLS_CLIENT_CA: pki.caBundleFile,
      OINGATE_TLS_CRL: pki.crlFile,
      OINGATE_CLIENT_CERT_HEADER: 'X-Client-Cert',
      OINGATE_TRUSTED_PROXIES: '127.0.0.1/32',
    });
    upstream = await startUpstream();
    nginx = await startNginxTls({
      gateUrl: gate.url,
      upstreamUrl: upstream.url,
      certFile: pki.server.certFile,
      keyFile: pki.server.keyFile,
      clientCaFile: pki.caBundleFile,
    });
  });

  after(async () => {
    await nginx?.stop();
    await upstream?.close();
    await gate?.close();
  });

  const viaNginx = (client: Issued | undefined, oin: string, headers: Record<string, string> = {}) =>
    tlsCall(nginx.url, { ca: pki.root.cert, ...(client ? { client } : {}), method: 'GET', headers: { 'x-oin': oin, ...headers } });

  it('lets a certificate tenant through on its verified certificate, with the OIN for the API', async () => {
    upstream.reset();
    const answer = await viaNginx(pki.clients.valid, PKI_OIN_A);
    expect(answer.status).to.equal(200);
    expect(headerValues(upstream.requests.at(-1)!, 'x-authenticated-oin')).to.deep.equal([PKI_OIN_A]);
    expect(headerValues(upstream.requests.at(-1)!, 'x-client-cert')).to.deep.equal([]);
    expect(gate.logs.last()?.['reason']).to.equal('ok');
  });

  it('refuses a revoked certificate, one of another OIN, one nginx never verified, and none', async () => {
    const cases: Array<[Issued | undefined, string, string]> = [
      [pki.clients.revoked, PKI_OIN_A, 'certificate_invalid'],
      [pki.clients.unrelated, PKI_OIN_A, 'certificate_invalid'],
      [pki.clients.validB, PKI_OIN_A, 'certificate_mismatch'],
      [undefined, PKI_OIN_A, 'certificate_missing'],
    ];
    for (const [client, oin, reason] of cases) {
      upstream.reset();
      const answer = await viaNginx(client, oin);
      expect(answer.status, reason).to.equal(403);
      expect(gate.logs.last()?.['reason']).to.equal(reason);
      expect(upstream.requests).to.have.length(0);
    }
  });

  it('never believes an X-Client-Cert the client sent itself', async () => {
    const { headerForms } = await import('../tls/header-forms.ts');
    const answer = await viaNginx(undefined, PKI_OIN_A, { 'x-client-cert': headerForms(pki.clients.valid.cert).nginx });
    expect(answer.status).to.equal(403);
    expect(gate.logs.last()?.['reason']).to.equal('certificate_missing');
  });

  it('still decides a token tenant by its token', async () => {
    const token = signToken({ oin: PKI_OIN_B }, secretB, { algorithm: 'HS256', keyid: 'b1' });
    expect((await viaNginx(undefined, PKI_OIN_B, { authorization: `Bearer ${token}` })).status).to.equal(200);
    expect((await viaNginx(pki.clients.validB, PKI_OIN_B, { authorization: `Bearer ${token}` })).status).to.equal(200);
    expect((await viaNginx(pki.clients.valid, PKI_OIN_B, { authorization: `Bearer ${token}` })).status).to.equal(403);
  });

  it('answers curl --cert as the README shows', async () => {
    const curl = (client: Issued) =>
      run('curl', [
        '-sS', '-o', '/dev/null', '-w', '%{http_code}',
        '--cacert', pki.root.certFile,
        '--cert', client.certFile, '--key', client.keyFile,
        '--resolve', `localhost:${nginx.port}:127.0.0.1`,
        '-H', `X-Oin: ${PKI_OIN_A}`,
        `https://localhost:${nginx.port}/api`,
      ]);
    expect((await curl(pki.clients.valid)).stdout).to.equal('200');
    expect((await curl(pki.clients.revoked)).stdout).to.equal('403');
  });
});
