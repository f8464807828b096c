import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { createTlsServer, type TlsServer, type TlsServerOptions } from '../../src/http/tls-server.ts';
import { factsOfHeader, type CertificateFacts } from '../../src/tls/facts.ts';
import { PKI_OIN_A, testPki, type Issued, type Pki } from '../support/pki.ts';
import { headerForms } from '../tls/header-forms.ts';

const run = promisify(execFile);

interface Answer {
  readonly status: number;
  readonly facts: CertificateFacts;
  /** Serial number of the server certificate that was served. */
  readonly served: string;
  /** Whether a kept-alive connection was used again. */
  readonly reused: boolean;
  /** Whether the TLS session was resumed. */
  readonly resumed: boolean;
}

interface Harness {
  readonly tls: TlsServer;
  readonly port: number;
  readonly dir: string;
  readonly files: { cert: string; key: string; ca: string; crl: string };
  readonly errors: Error[];
  readonly handshakeErrors: Error[];
  close(): Promise<void>;
}

async function replace(file: string, text: string): Promise<void> {
  const temporary = `${file}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
}

async function until<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() - started > timeoutMs) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('http/tls-server', function () {
  let pki: Pki;
  const harnesses: Harness[] = [];

  before(async () => {
    pki = await testPki();
  });

  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((harness) => harness.close()));
  });

  async function start(options: { crl?: string | null; clientCa?: boolean; handshakeTimeoutMs?: number; now?: () => number } = {}): Promise<Harness> {
    const dir = await mkdtemp(join(tmpdir(), 'oingate-tls-'));
    const files = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem'), crl: join(dir, 'crl.pem') };
    await copyFile(pki.server.certFile, files.cert);
    await copyFile(pki.server.keyFile, files.key);
    await writeFile(files.ca, pki.caBundle);
    if (options.crl !== null) await writeFile(files.crl, options.crl ?? pki.crl);
    const errors: Error[] = [];
    const handshakeErrors: Error[] = [];
    let tls: TlsServer | undefined;
    const serverOptions: TlsServerOptions = {
      certFile: files.cert,
      keyFile: files.key,
      ...(options.clientCa !== false ? { clientCaFile: files.ca } : {}),
      ...(options.clientCa !== false && options.crl !== null ? { crlFile: files.crl } : {}),
      pollMs: 100,
      ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
      ...(options.now !== undefined ? { now: options.now } : {}),
      onError: (error) => errors.push(error),
      onHandshakeError: (error) => handshakeErrors.push(error),
    };
    tls = await createTlsServer((req, res) => {
      const facts = tls?.facts(req.socket as TLSSocket);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(facts));
    }, serverOptions);
    await new Promise<void>((resolve) => tls?.server.listen(0, '127.0.0.1', resolve));
    const port = (tls.server.address() as AddressInfo).port;
    const harness: Harness = {
      tls,
      port,
      dir,
      files,
      errors,
      handshakeErrors,
      async close() {
        tls?.close();
        tls?.server.closeAllConnections();
        await new Promise((resolve) => tls?.server.close(resolve));
        await rm(dir, { recursive: true, force: true });
      },
    };
    harnesses.push(harness);
    return harness;
  }

  function get(harness: Harness, client?: Issued, agent?: Agent): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: harness.port,
          path: '/',
          ca: pki.root.cert,
          ...(client ? { cert: client.cert, key: client.key } : {}),
          agent: agent ?? false,
        },
        (res) => {
          const socket = res.socket as TLSSocket;
          const served = socket.getPeerCertificate().serialNumber;
          const resumed = socket.isSessionReused();
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, facts: JSON.parse(body) as CertificateFacts, served, reused: req.reusedSocket, resumed }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  const serialOf = (issued: Issued) => new X509Certificate(issued.cert).serialNumber;
  const sha256Of = (issued: Issued) => new X509Certificate(issued.cert).fingerprint256.replaceAll(':', '').toLowerCase();

  it('reads the OIN of a verified client certificate', async () => {
    const harness = await start();
    const answer = await get(harness, pki.clients.valid);
    expect(answer.facts).to.deep.equal({ presented: true, verified: true, oin: PKI_OIN_A, sha256: sha256Of(pki.clients.valid) });
  });

  it('says a client without a certificate presented none', async () => {
    const harness = await start();
    expect((await get(harness)).facts).to.deep.equal({ presented: false, verified: false });
  });

  it('lets a client with a bad certificate finish the handshake, and says precisely why it does not count', async () => {
    const harness = await start();
    const cases: Array<[Issued, string]> = [
      [pki.clients.expired, 'expired'],
      [pki.clients.revoked, 'revoked'],
      [pki.clients.unrelated, 'untrusted'],
      [pki.clients.selfSigned, 'untrusted'],
    ];
    for (const [client, detail] of cases) {
      const answer = await get(harness, client);
      expect(answer.facts, detail).to.deep.equal({ presented: true, verified: false, reason: 'certificate_invalid', detail, sha256: sha256Of(client) });
    }
    expect(harness.handshakeErrors).to.have.length(0);
  });

  it('verifies a certificate without an OIN but gives no OIN', async () => {
    const harness = await start();
    expect((await get(harness, pki.clients.noOin)).facts).to.deep.include({ verified: true, reason: 'certificate_no_oin', detail: 'absent' });
    expect((await get(harness, pki.clients.twoOins)).facts).to.deep.include({ verified: true, reason: 'certificate_no_oin', detail: 'ambiguous' });
  });

  it('gives the same verdicts for a certificate from a header as for the same certificate over TLS', async () => {
    const harness = await start();
    const verifier = harness.tls.verifier;
    expect(verifier).not.to.equal(undefined);
    // The server certificate as a client one: its extended key usage allows server authentication only.
    for (const [name, client] of Object.entries({ ...pki.clients, server: pki.server })) {
      const overTls = (await get(harness, client)).facts;
      for (const [form, value] of Object.entries(headerForms(client.cert, pki.intermediate.cert))) {
        expect(factsOfHeader(value, verifier!, Date.now()), `${name} as ${form}`).to.deep.equal(overTls);
      }
    }
  });

  it('agrees with the header path on a stale CRL and on a missing one', async () => {
    for (const [crl, detail] of [[pki.staleCrl, 'crl_expired'], [pki.intermediateCrl, 'crl_missing']] as const) {
      const harness = await start({ crl });
      const overTls = (await get(harness, pki.clients.valid)).facts;
      expect(overTls, detail).to.include({ verified: false, detail });
      expect(factsOfHeader(headerForms(pki.clients.valid.cert).nginx, harness.tls.verifier!, Date.now())).to.deep.equal(overTls);
    }
  });

  it('reads the OIN of a certificate curl presents', async () => {
    const harness = await start();
    const { stdout } = await run('curl', ['-sS', '--cacert', pki.root.certFile, '--cert', pki.clients.valid.certFile, '--key', pki.clients.valid.keyFile,
      `https://127.0.0.1:${harness.port}/`]);
    expect(JSON.parse(stdout)).to.include({ verified: true, oin: PKI_OIN_A });
  });

  it('refuses TLS before 1.2', async () => {
    const harness = await start();
    const error = await new Promise<Error | undefined>((resolve) => {
      const req = request({ host: '127.0.0.1', port: harness.port, ca: pki.root.cert, agent: false, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => resolve(undefined));
      req.on('error', resolve);
      req.end();
    });
    expect(error).to.be.instanceOf(Error);
    await until(async () => harness.tls.status().handshakeFailures, (count) => count > 0);
    expect(harness.tls.status().handshakeFailures).to.be.greaterThan(0);
  });

  it('cuts a connection that never finishes its handshake and counts it', async () => {
    const harness = await start({ handshakeTimeoutMs: 200 });
    const started = Date.now();
    const socket = connect(harness.port, '127.0.0.1');
    await new Promise((resolve) => socket.on('close', resolve).on('error', () => undefined));
    expect(Date.now() - started).to.be.below(5000);
    await until(async () => harness.tls.status().handshakeFailures, (count) => count > 0);
    expect(harness.tls.status().handshakeFailures).to.equal(1);
  });

  it('serves a replaced server pair to new connections without a failed handshake', async () => {
    const harness = await start();
    let stop = false;
    let failures = 0;
    let served = 0;
    const traffic = (async () => {
      while (!stop) {
        try {
          await get(harness, pki.clients.valid);
          served += 1;
        } catch {
          failures += 1;
        }
      }
    })();
    await until(async () => served, (count) => count >= 3);
    // Key first, then certificate: in between the pair does not match and must be refused, not served.
    await replace(harness.files.key, pki.server2.key);
    await replace(harness.files.cert, pki.server2.cert);
    const switched = Date.now();
    const answer = await until(() => get(harness, pki.clients.valid), (value) => value.served === serialOf(pki.server2));
    const elapsed = Date.now() - switched;
    await until(async () => served, (count) => count >= 3);
    stop = true;
    await traffic;
    expect(answer.served).to.equal(serialOf(pki.server2));
    expect(elapsed).to.be.below(4000);
    expect(failures).to.equal(0);
    expect(harness.handshakeErrors).to.have.length(0);
    expect(harness.tls.status().lastError).to.equal(null);
    expect(harness.tls.status().certificateNotAfter).to.equal(new Date(new X509Certificate(pki.server2.cert).validTo).toISOString());
  });

  it('refuses a key that does not match the certificate and keeps serving the old pair', async () => {
    const harness = await start();
    await replace(harness.files.cert, pki.server2.cert);
    const status = await until(async () => harness.tls.status(), (value) => value.lastError !== null);
    expect(status.lastError).to.match(/server\.key: does not match the certificate in .*server\.pem/);
    expect(status.lastError).not.to.include(pki.server.key.split('\n')[1]!.slice(0, 12));
    const answer = await get(harness, pki.clients.valid);
    expect(answer.served).to.equal(serialOf(pki.server));
    expect(answer.facts).to.include({ verified: true });

    await replace(harness.files.key, 'not a key\n');
    await until(async () => harness.tls.status().lastError, (value) => /contains no/.test(value ?? ''));
    expect(harness.tls.status().lastError).to.match(/server\.key: contains no PRIVATE KEY/);
    expect((await get(harness)).served).to.equal(serialOf(pki.server));

    await replace(harness.files.key, pki.server2.key);
    const fixed = await until(() => get(harness), (value) => value.served === serialOf(pki.server2));
    expect(fixed.served).to.equal(serialOf(pki.server2));
    expect(harness.tls.status().lastError).to.equal(null);
    expect(harness.errors.length).to.be.greaterThan(0);
  });

  it('enforces a replaced CRL within 2 s, on open keep-alive connections as well', async () => {
    const harness = await start({ crl: pki.rootCrl + pki.intermediateCrlBefore });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await get(harness, pki.clients.revoked, agent)).facts).to.include({ verified: true, oin: PKI_OIN_A });
      const before = harness.tls.status().crlNextUpdate;
      await replace(harness.files.crl, pki.crl);
      const replaced = Date.now();
      const fresh = await until(() => get(harness, pki.clients.revoked), (value) => value.facts.verified === false);
      expect(Date.now() - replaced).to.be.below(4000);
      expect(fresh.facts).to.include({ verified: false, detail: 'revoked' });
      const kept = await get(harness, pki.clients.revoked, agent);
      expect(kept.reused).to.equal(true);
      expect(kept.facts).to.include({ verified: false, detail: 'revoked' });
      expect(harness.tls.status().crlNextUpdate).not.to.equal(null);
      expect(before).not.to.equal(null);
    } finally {
      agent.destroy();
    }
  });

  it('judges a keep-alive connection again after 60 s, so a certificate that expired meanwhile stops counting', async () => {
    // The clock starts 30 s before the client certificate ends.
    const notAfter = Date.parse(new X509Certificate(pki.clients.valid.cert).validTo);
    let offsetMs = notAfter - 30_000 - Date.now();
    const harness = await start({ now: () => Date.now() + offsetMs });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await get(harness, pki.clients.valid, agent)).facts).to.include({ verified: true, oin: PKI_OIN_A });
      // Past the certificate's end, but within a minute of the judgement: the verdict is reused.
      offsetMs += 31_000;
      const cached = await get(harness, pki.clients.valid, agent);
      expect(cached.reused).to.equal(true);
      expect(cached.facts).to.include({ verified: true });
      // A minute on, the same connection is judged again.
      offsetMs += 30_000;
      const judged = await get(harness, pki.clients.valid, agent);
      expect(judged.reused).to.equal(true);
      expect(judged.facts).to.include({ verified: false, detail: 'expired' });
    } finally {
      agent.destroy();
    }
  });

  it('does not let a resumed TLS session carry a verdict made under the old CRLs', async () => {
    const harness = await start({ crl: pki.rootCrl + pki.intermediateCrlBefore });
    const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
    try {
      expect((await get(harness, pki.clients.revoked, agent)).facts).to.include({ verified: true });
      const resumedBefore = await get(harness, pki.clients.revoked, agent);
      expect(resumedBefore.resumed).to.equal(true);
      await replace(harness.files.crl, pki.crl);
      await until(() => get(harness, pki.clients.revoked), (value) => !value.facts.verified);
      const after = await until(() => get(harness, pki.clients.revoked, agent), (value) => value.resumed);
      expect(after.resumed).to.equal(true);
      expect(after.facts).to.include({ verified: false, detail: 'revoked' });
      await get(harness, pki.clients.valid, agent);
      const valid = await until(() => get(harness, pki.clients.valid, agent), (value) => value.resumed);
      expect(valid).to.deep.include({ resumed: true, facts: { presented: true, verified: true, oin: PKI_OIN_A, sha256: sha256Of(pki.clients.valid) } });
    } finally {
      agent.destroy();
    }
  });

  it('refuses a CRL file that is not valid and keeps enforcing the old CRLs', async () => {
    const harness = await start();
    await replace(harness.files.crl, pki.crl + pki.unrelatedCrl);
    const status = await until(async () => harness.tls.status(), (value) => value.lastError !== null);
    expect(status.lastError).to.match(/crl\.pem: CRL 3 is not signed by any CA/);
    expect((await get(harness, pki.clients.revoked)).facts).to.include({ verified: false, detail: 'revoked' });
    expect((await get(harness, pki.clients.valid)).facts).to.include({ verified: true });
    await replace(harness.files.crl, pki.crl);
    expect((await until(async () => harness.tls.status(), (value) => value.lastError === null)).lastError).to.equal(null);
  });

  it('enforces a replaced CA bundle', async () => {
    const harness = await start({ crl: null });
    expect((await get(harness, pki.clients.unrelated)).facts).to.include({ verified: false, detail: 'untrusted' });
    await replace(harness.files.ca, pki.caBundle + pki.unrelatedRoot.cert);
    const answer = await until(() => get(harness, pki.clients.unrelated), (value) => value.facts.verified);
    expect(answer.facts).to.include({ verified: true, oin: PKI_OIN_A });
    expect(harness.tls.status().clientCas).to.equal(3);
  });

  it('reports its material', async () => {
    const harness = await start();
    expect(harness.tls.status()).to.deep.equal({
      certificateNotAfter: new Date(new X509Certificate(pki.server.cert).validTo).toISOString(),
      clientCas: 2,
      crlNextUpdate: harness.tls.status().crlNextUpdate,
      lastError: null,
      handshakeFailures: 0,
    });
    expect(Date.parse(harness.tls.status().crlNextUpdate ?? '')).to.be.greaterThan(Date.now());
  });

  it('does not ask for a client certificate without a client CA bundle', async () => {
    const harness = await start({ clientCa: false });
    expect((await get(harness, pki.clients.valid)).facts).to.deep.equal({ presented: false, verified: false });
    expect(harness.tls.status()).to.include({ clientCas: null, crlNextUpdate: null });
  });

  it('refuses to start on a bad file, naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oingate-tls-'));
    try {
      const key = join(dir, 'server.key');
      await writeFile(key, pki.server2.key);
      let caught: unknown;
      try {
        await createTlsServer(() => undefined, { certFile: pki.server.certFile, keyFile: key });
      } catch (error) {
        caught = error;
      }
      expect((caught as Error).message).to.match(/server\.key: does not match/);
      expect((caught as { code: string }).code).to.equal('ERR_TLS_SERVER_PAIR');
      const missing = await createTlsServer(() => undefined, { certFile: join(dir, 'missing.pem'), keyFile: key }).catch((error: Error) => error);
      expect((missing as Error).message).to.match(/missing\.pem: cannot be read \(ENOENT\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
