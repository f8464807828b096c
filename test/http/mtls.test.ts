import { expect } from 'chai';
import { copyFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { certificateSha256 } from '../../src/tls/verify.ts';
import { eventually, send, signToken, startGate, type Gate, type TenantSpec } from '../support/gate.ts';
import { PKI_OIN_A, PKI_OIN_B, testPki, type Issued, type Pki } from '../support/pki.ts';
import { headerValues, startUpstream, type Upstream } from '../support/upstream.ts';
import { tlsAgent, tlsCall, type TlsAnswer } from '../support/tls-client.ts';
import { headerForms } from '../tls/header-forms.ts';

/**
 * Mutual TLS end to end (contract §9): the service's own HTTPS listener
 * with client certificates from the test PKI, real node:https clients, and
 * the binding table row by row; the header path from a trusted proxy; the
 * server pair and the CRL replaced under traffic.
 */

const SECRET_A = 'mtls-tenant-a-secret-0123456789abcdefghij';
const SECRET_B = 'mtls-tenant-b-secret-0123456789abcdefghij';

function tenants(authenticationA: string): TenantSpec[] {
  return [
    { oin: PKI_OIN_A, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'a1', alg: 'HS256', secret: SECRET_A }], authentication: authenticationA } as TenantSpec,
    { oin: PKI_OIN_B, cidrs: ['127.0.0.0/8'], keys: [{ kid: 'b1', alg: 'HS256', secret: SECRET_B }] },
  ];
}

const tokenA = () => signToken({ oin: PKI_OIN_A }, SECRET_A, { algorithm: 'HS256', keyid: 'a1' });

function tlsEnv(pki: Pki, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OINGATE_TLS_CERT: pki.server.certFile,
    OINGATE_TLS_KEY: pki.server.keyFile,
    OINGATE_TLS_CLIENT_CA: pki.caBundleFile,
    OINGATE_TLS_CRL: pki.crlFile,
    ...extra,
  };
}

async function metric(gate: Gate, name: string): Promise<number | undefined> {
  const text = (await send(gate.adminUrl, { method: 'GET', path: '/metrics' })).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('mutual TLS on the public listener', function () {
  let pki: Pki;

  before(async () => {
    pki = await testPki();
  });

  describe('the binding table over real TLS connections', () => {
    type Cert = 'none' | 'same' | 'other' | 'invalid';
    const certOf = (cert: Cert): Issued | undefined =>
      cert === 'none' ? undefined : cert === 'same' ? pki.clients.valid : cert === 'other' ? pki.clients.validB : pki.clients.revoked;
    // authentication -> cert -> [without token, with token]
    const expected: Record<string, Record<Cert, [string, string]>> = {
      token: {
        none: ['401 token_missing', '200 ok'],
        same: ['401 token_missing', '200 ok'],
        other: ['403 certificate_mismatch', '403 certificate_mismatch'],
        invalid: ['403 certificate_invalid', '403 certificate_invalid'],
      },
      certificate: {
        none: ['403 certificate_missing', '403 certificate_missing'],
        same: ['200 ok', '200 ok'],
        other: ['403 certificate_mismatch', '403 certificate_mismatch'],
        invalid: ['403 certificate_invalid', '403 certificate_invalid'],
      },
      'certificate+token': {
        none: ['403 certificate_missing', '403 certificate_missing'],
        same: ['401 token_missing', '200 ok'],
        other: ['403 certificate_mismatch', '403 certificate_mismatch'],
        invalid: ['403 certificate_invalid', '403 certificate_invalid'],
      },
    };

    for (const [authentication, rows] of Object.entries(expected)) {
      describe(`a ${authentication} tenant`, () => {
        let gate: Gate;
        before(async () => {
          gate = await startGate(tenants(authentication), tlsEnv(pki));
        });
        after(() => gate.close());

        for (const [cert, [withoutToken, withToken]] of Object.entries(rows) as Array<[Cert, [string, string]]>) {
          for (const [token, want] of [[false, withoutToken], [true, withToken]] as const) {
            it(`${cert} certificate, ${token ? 'with' : 'without'} token: ${want}`, async () => {
              const client = certOf(cert);
              const answer = await tlsCall(gate.url, {
                ca: pki.root.cert,
                ...(client ? { client } : {}),
                body: JSON.stringify({ oin: PKI_OIN_A }),
                headers: token ? { authorization: `Bearer ${tokenA()}` } : {},
              });
              const line = gate.logs.last();
              expect(`${answer.status} ${String(line?.['reason'])}`).to.equal(want);
              if (answer.status === 403) expect(answer.json()['error']).to.equal('forbidden');
              if (cert === 'invalid') expect(line?.['certificate']).to.equal('revoked');
              if (cert === 'other') expect(line?.['certificateOin']).to.equal(PKI_OIN_B);
              if (client) expect(line?.['certificateSha256']).to.equal(certificateSha256(new X509Certificate(client.cert)));
              else expect(line).to.not.have.property('certificateSha256');
            });
          }
        }
      });
    }
  });

  describe('the service over TLS', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate(tenants('certificate'), tlsEnv(pki));
    });
    after(() => gate.close());

    it('speaks HTTPS only', async () => {
      expect(gate.url).to.match(/^https:/);
      const plain = await send(gate.url.replace('https:', 'http:'), { method: 'GET', path: '/' }).then(
        (answer) => answer.status,
        () => 'refused',
      );
      expect(plain).to.not.equal(200);
    });

    it('keeps the plain listener’s hardening: malformed HTTP and a missing Host get the JSON refusal', async () => {
      const { connect } = await import('node:tls');
      const url = new URL(gate.url);
      const exchange = (bytes: string) =>
        new Promise<string>((resolve, reject) => {
          const socket = connect({ host: url.hostname, port: Number(url.port), ca: pki.root.cert, servername: 'localhost', cert: pki.clients.valid.cert, key: pki.clients.valid.key }, () => socket.write(bytes));
          let text = '';
          socket.setEncoding('utf8');
          socket.on('data', (chunk: string) => (text += chunk));
          socket.on('end', () => resolve(text));
          socket.on('error', reject);
        });
      const noHost = await exchange('GET /api HTTP/1.1\r\n\r\n');
      expect(noHost).to.match(/^HTTP\/1\.1 400 /).and.include('"error":"bad_request"').and.include('x-request-id');
      const garbage = await exchange('GET /api HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
      expect(garbage).to.match(/^HTTP\/1\.1 400 /).and.include('"error":"bad_request"');
    });

    it('refuses a certificate of another root and an expired one, whatever the tenant', async () => {
      for (const client of [pki.clients.unrelated, pki.clients.expired, pki.clients.selfSigned]) {
        const answer = await tlsCall(gate.url, { ca: pki.root.cert, client, body: JSON.stringify({ oin: PKI_OIN_B }), headers: { authorization: 'Bearer x' } });
        expect(answer.status).to.equal(403);
        expect(gate.logs.last()?.['reason']).to.equal('certificate_invalid');
      }
    });

    it('gives a certificate without a usable OIN certificate_no_oin', async () => {
      for (const client of [pki.clients.noOin, pki.clients.badOin, pki.clients.twoOins]) {
        const answer = await tlsCall(gate.url, { ca: pki.root.cert, client, body: JSON.stringify({ oin: PKI_OIN_A }) });
        expect(answer.status).to.equal(403);
        expect(gate.logs.last()?.['reason']).to.equal('certificate_no_oin');
      }
    });

    it('refuses every request on a connection whose certificate does not verify', async () => {
      const agent = tlsAgent(pki.root.cert, pki.clients.revoked);
      try {
        for (let i = 0; i < 3; i++) {
          const answer = await tlsCall(gate.url, { ca: pki.root.cert, agent, body: JSON.stringify({ oin: PKI_OIN_B }), headers: { authorization: 'Bearer x' } });
          expect(answer.status).to.equal(403);
        }
      } finally {
        agent.destroy();
      }
    });

    it('shows the TLS material in /readyz and /metrics', async () => {
      const ready = (await send(gate.adminUrl, { method: 'GET', path: '/readyz' })).json();
      const tls = ready['tls'] as Record<string, unknown>;
      const notAfter = new X509Certificate(pki.server.cert).validTo;
      expect(tls['certificateNotAfter']).to.equal(new Date(notAfter).toISOString());
      expect(tls['clientCas']).to.equal(2);
      expect(tls['crlNextUpdate']).to.be.a('string');
      expect(tls['lastError']).to.equal(null);
      expect(await metric(gate, 'oingate_tls_certificate_expiry_timestamp_seconds')).to.equal(Date.parse(notAfter) / 1000);
      expect(await metric(gate, 'oingate_tls_handshake_failures_total')).to.be.a('number');
    });

    it('counts a failed handshake', async () => {
      const before = (await metric(gate, 'oingate_tls_handshake_failures_total')) as number;
      // A client that does not trust our server certificate aborts the handshake.
      await tlsCall(gate.url, { ca: pki.unrelatedRoot.cert, body: '{}' }).catch(() => undefined);
      await eventually(async () => {
        expect(await metric(gate, 'oingate_tls_handshake_failures_total')).to.be.greaterThan(before);
      });
    });
  });

  describe('certificate from a trusted front proxy (OINGATE_CLIENT_CERT_HEADER)', () => {
    let gate: Gate;
    before(async () => {
      gate = await startGate(tenants('certificate'), {
        OINGATE_TLS_CLIENT_CA: pki.caBundleFile,
        OINGATE_TLS_CRL: pki.crlFile,
        OINGATE_CLIENT_CERT_HEADER: 'X-Client-Cert',
        OINGATE_TRUSTED_PROXIES: '127.0.0.2/32',
      });
    });
    after(() => gate.close());

    const ask = (value: string, localAddress: string) =>
      send(gate.url, { localAddress, headers: { 'content-type': 'application/json', 'x-client-cert': value }, body: JSON.stringify({ oin: PKI_OIN_A }) });

    it('accepts the nginx, Envoy and Traefik forms from the trusted proxy, and verifies each itself', async () => {
      const forms = headerForms(pki.clients.valid.cert, pki.intermediate.cert);
      for (const [form, value] of Object.entries(forms)) {
        const answer = await ask(value, '127.0.0.2');
        expect(answer.status, form).to.equal(200);
        expect(answer.headers['x-authenticated-certificate-sha256'], form).to.equal(certificateSha256(new X509Certificate(pki.clients.valid.cert)));
      }
      for (const [form, value] of Object.entries(headerForms(pki.clients.revoked.cert))) {
        expect((await ask(value, '127.0.0.2')).status, form).to.equal(403);
        expect(gate.logs.last()?.['reason'], form).to.equal('certificate_invalid');
      }
      for (const [form, value] of Object.entries(headerForms(pki.clients.validB.cert))) {
        expect((await ask(value, '127.0.0.2')).status, form).to.equal(403);
        expect(gate.logs.last()?.['reason'], form).to.equal('certificate_mismatch');
      }
    });

    it('ignores the header from a peer that is not a trusted proxy', async () => {
      const answer = await ask(headerForms(pki.clients.valid.cert).nginx, '127.0.0.1');
      expect(answer.status).to.equal(403);
      expect(gate.logs.last()?.['reason']).to.equal('certificate_missing');
    });

    it('refuses garbage and a repeated header from the trusted proxy as certificate_invalid', async () => {
      expect((await ask('not a certificate', '127.0.0.2')).status).to.equal(403);
      expect(gate.logs.last()?.['reason']).to.equal('certificate_invalid');
      const nginx = headerForms(pki.clients.valid.cert).nginx;
      const answer = await send(gate.url, {
        localAddress: '127.0.0.2',
        headers: { 'content-type': 'application/json', 'x-client-cert': [nginx, nginx] },
        body: JSON.stringify({ oin: PKI_OIN_A }),
      });
      expect(answer.status).to.equal(403);
      expect(gate.logs.last()?.['reason']).to.equal('certificate_invalid');
    });

    it('shows tls in /readyz without a server certificate', async () => {
      const tls = (await send(gate.adminUrl, { method: 'GET', path: '/readyz' })).json()['tls'] as Record<string, unknown>;
      expect(tls).to.deep.include({ certificateNotAfter: null, clientCas: 2, lastError: null });
    });
  });

  describe('proxy mode', () => {
    let upstream: Upstream;
    let gate: Gate;
    before(async () => {
      upstream = await startUpstream();
      gate = await startGate(tenants('certificate+token'), tlsEnv(pki, { OINGATE_UPSTREAM: upstream.url }));
    });
    after(async () => {
      await gate.close();
      await upstream.close();
    });

    it('adds x-authenticated-certificate-sha256 and drops one the client sent', async () => {
      const answer = await tlsCall(gate.url, {
        ca: pki.root.cert,
        client: pki.clients.valid,
        body: JSON.stringify({ oin: PKI_OIN_A }),
        headers: { authorization: `Bearer ${tokenA()}`, 'x-authenticated-certificate-sha256': 'forged' },
      });
      expect(answer.status).to.equal(200);
      const recorded = upstream.requests.at(-1);
      expect(recorded && headerValues(recorded, 'x-authenticated-certificate-sha256')).to.deep.equal([
        certificateSha256(new X509Certificate(pki.clients.valid.cert)),
      ]);
    });
  });

  describe('proxy mode, certificate-only tenant', () => {
    let upstream: Upstream;
    let gate: Gate;
    before(async () => {
      upstream = await startUpstream();
      gate = await startGate(tenants('certificate'), tlsEnv(pki, { OINGATE_UPSTREAM: upstream.url }));
    });
    after(async () => {
      await gate.close();
      await upstream.close();
    });

    it('never forwards an Authorization header that oingate did not check', async () => {
      const answer = await tlsCall(gate.url, {
        ca: pki.root.cert,
        client: pki.clients.valid,
        body: JSON.stringify({ oin: PKI_OIN_A }),
        headers: { authorization: 'Bearer not-checked-by-anyone' },
      });
      expect(answer.status).to.equal(200);
      const recorded = upstream.requests.at(-1);
      expect(recorded && headerValues(recorded, 'authorization')).to.deep.equal([]);
      expect(recorded && headerValues(recorded, 'x-authenticated-oin')).to.deep.equal([PKI_OIN_A]);
    });
  });

  describe('configuration', () => {
    it('refuses a whitelist with a certificate tenant when no client CA is set, naming the tenant', async () => {
      const gate = await startGate(tenants('certificate'));
      try {
        const ready = (await send(gate.adminUrl, { method: 'GET', path: '/readyz' })).json();
        expect(ready['ready']).to.equal(false);
        expect(String(ready['lastError'])).to.include(PKI_OIN_A).and.include('OINGATE_TLS_CLIENT_CA');
      } finally {
        await gate.close();
      }
    });

    it('refuses to start with a client CA that no certificate could reach (plain listener, no header)', async () => {
      const error = await startGate(tenants('token'), { OINGATE_TLS_CLIENT_CA: pki.caBundleFile }).then(
        async (gate) => {
          await gate.close();
          return undefined;
        },
        (e: Error) => e,
      );
      expect(error?.message).to.match(/^OINGATE_TLS_CLIENT_CA: /);
    });

    it('refuses to start on a server key that does not match, naming the file', async () => {
      const error = await startGate(tenants('token'), tlsEnv(pki, { OINGATE_TLS_KEY: pki.server2.keyFile })).then(
        async (gate) => {
          await gate.close();
          return undefined;
        },
        (e: Error) => e,
      );
      expect(error?.message).to.include(pki.server2.keyFile.split('/').at(-1) as string);
    });
  });

  describe('a refused TLS file', () => {
    it('keeps the last good CA bundle and shows the error in /readyz and /metrics until the file loads again', async () => {
      const { mkdtemp, rm } = await import('node:fs/promises');
      const { tmpdir } = await import('node:os');
      const dir = await mkdtemp(join(tmpdir(), 'oingate-mtls-refused-'));
      const ca = join(dir, 'ca.pem');
      await copyFile(pki.caBundleFile, ca);
      const gate = await startGate(tenants('certificate'), tlsEnv(pki, { OINGATE_TLS_CLIENT_CA: ca }));
      const readyTls = async () => (await send(gate.adminUrl, { method: 'GET', path: '/readyz' })).json()['tls'] as Record<string, unknown>;
      try {
        await writeFile(`${ca}.new`, 'not a PEM file\n');
        await rename(`${ca}.new`, ca);
        await eventually(async () => {
          expect(String((await readyTls())['lastError'])).to.include('ca.pem');
        });
        expect(await metric(gate, 'oingate_tls_material_error')).to.equal(1);
        expect(await metric(gate, 'oingate_tls_reloads_refused_total')).to.be.greaterThan(0);
        // The old bundle is still enforced.
        const answer = await tlsCall(gate.url, { ca: pki.root.cert, client: pki.clients.valid, body: JSON.stringify({ oin: PKI_OIN_A }) });
        expect(answer.status).to.equal(200);
        await copyFile(pki.caBundleFile, `${ca}.new`);
        await rename(`${ca}.new`, ca);
        await eventually(async () => {
          expect((await readyTls())['lastError']).to.equal(null);
        });
        expect(await metric(gate, 'oingate_tls_material_error')).to.equal(0);
      } finally {
        await gate.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  describe('rotation under traffic', () => {
    it('serves a replaced server pair and enforces a replaced CRL without a failed handshake', async function () {
      this.timeout(30_000);
      const { mkdtemp } = await import('node:fs/promises');
      const { tmpdir } = await import('node:os');
      const dir = await mkdtemp(join(tmpdir(), 'oingate-mtls-rotate-'));
      const files = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), crl: join(dir, 'crl.pem') };
      await copyFile(pki.server.certFile, files.cert);
      await copyFile(pki.server.keyFile, files.key);
      // Before `revoked` was revoked: it verifies.
      await writeFile(files.crl, pki.rootCrl + pki.intermediateCrlBefore);
      const gate = await startGate(tenants('certificate'), tlsEnv(pki, { OINGATE_TLS_CERT: files.cert, OINGATE_TLS_KEY: files.key, OINGATE_TLS_CRL: files.crl }));
      const keepAlive = tlsAgent(pki.root.cert, pki.clients.revoked);
      const answers: Array<TlsAnswer | Error> = [];
      const served = new Set<string>();
      let running = true;
      const traffic = (async () => {
        while (running) {
          // A new connection per request: every one is a full handshake.
          const answer = await tlsCall(gate.url, { ca: pki.root.cert, client: pki.clients.valid, body: JSON.stringify({ oin: PKI_OIN_A }) }).catch((e: Error) => e);
          answers.push(answer);
        }
      })();
      try {
        expect((await tlsCall(gate.url, { ca: pki.root.cert, agent: keepAlive, body: JSON.stringify({ oin: PKI_OIN_A }) })).status).to.equal(200);
        const serial = async () =>
          new Promise<string>((resolve, reject) => {
            import('node:tls').then(({ connect }) => {
              const url = new URL(gate.url);
              const socket = connect({ host: url.hostname, port: Number(url.port), ca: pki.root.cert, servername: 'localhost' }, () => {
                resolve(socket.getPeerX509Certificate()?.serialNumber ?? '');
                socket.end();
              });
              socket.on('error', reject);
            }, reject);
          });
        served.add(await serial());
        // The pair by symlink-free atomic renames of both files: key first would mismatch, so write both, then move both.
        await copyFile(pki.server2.certFile, `${files.cert}.new`);
        await copyFile(pki.server2.keyFile, `${files.key}.new`);
        await rename(`${files.key}.new`, files.key);
        await rename(`${files.cert}.new`, files.cert);
        const rotatedIn = await eventually(async () => {
          served.add(await serial());
          expect(served.size).to.equal(2);
        }, 5_000, 50);
        expect(rotatedIn).to.be.lessThan(2_500);
        // Revoke: the keep-alive connection of `revoked` is refused from now on.
        await writeFile(`${files.crl}.new`, pki.crl);
        await rename(`${files.crl}.new`, files.crl);
        const revokedIn = await eventually(async () => {
          const answer = await tlsCall(gate.url, { ca: pki.root.cert, agent: keepAlive, body: JSON.stringify({ oin: PKI_OIN_A }) });
          expect(answer.status).to.equal(403);
        }, 5_000, 50);
        expect(revokedIn).to.be.lessThan(2_500);
        expect(await metric(gate, 'oingate_tls_handshake_failures_total')).to.equal(0);
        expect(await metric(gate, 'oingate_tls_reloads_refused_total')).to.be.a('number');
      } finally {
        running = false;
        await traffic;
        keepAlive.destroy();
        await gate.close();
      }
      const failures = answers.filter((a) => a instanceof Error || a.status !== 200);
      expect(answers.length).to.be.greaterThan(5);
      expect(failures.map((a) => (a instanceof Error ? a.message : a.status))).to.deep.equal([]);
    });
  });
});
