import { expect } from 'chai';
import { createPrivateKey } from 'node:crypto';
import { ServerPairError } from '../../src/tls/errors.ts';
import { loadServerPair } from '../../src/tls/pair.ts';
import { toPem } from '../../src/tls/pem.ts';
import { testPki, type Pki } from '../support/pki.ts';

describe('tls/pair', () => {
  let pki: Pki;
  before(async () => {
    pki = await testPki();
  });

  const load = (cert: string, key: string) => loadServerPair(cert, 'server.pem', key, 'server.key');

  it('loads a matching pair, the certificate file with its chain', () => {
    const pair = load(pki.server.cert + pki.root.cert, pki.server.key);
    expect(pair.certificate.subject).to.equal('CN=localhost');
    expect(pair.certPem.match(/BEGIN CERTIFICATE/g)).to.have.length(2);
    expect(pair.notAfterMs).to.equal(Date.parse(pair.certificate.validTo));
  });

  it('loads SEC1 keys, with or without an EC PARAMETERS block', () => {
    const sec1 = createPrivateKey(pki.server.key).export({ type: 'sec1', format: 'pem' }) as string;
    expect(sec1).to.include('BEGIN EC PRIVATE KEY');
    expect(load(pki.server.cert, sec1).certificate.subject).to.equal('CN=localhost');
    const parameters = '-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n';
    expect(load(pki.server.cert, parameters + sec1).certificate.subject).to.equal('CN=localhost');
  });

  it('refuses a key that does not match the certificate', () => {
    expect(() => load(pki.server.cert, pki.server2.key)).to.throw(ServerPairError, /^server\.key: does not match the certificate in server\.pem$/);
  });

  it('refuses a key file with two keys', () => {
    expect(() => load(pki.server.cert, pki.server.key + pki.server2.key)).to.throw(ServerPairError, /holds 2 private keys, expected one/);
  });

  it('refuses an encrypted key', () => {
    const encrypted = createPrivateKey(pki.server.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret passphrase' }) as string;
    expect(() => load(pki.server.cert, encrypted)).to.throw(ServerPairError, /is encrypted; a passphrase is not supported/);
  });

  it('refuses a key block that is no key, without echoing it', () => {
    const junk = Buffer.from('0123456789abcdef0123456789abcdef');
    let error: Error | undefined;
    try {
      load(pki.server.cert, toPem(junk, 'PRIVATE KEY'));
    } catch (caught) {
      error = caught as Error;
    }
    expect(error).to.be.instanceOf(ServerPairError);
    expect(error?.message).to.equal('server.key: is not a readable private key');
  });

  it('refuses a certificate in place of the key and a key in place of the certificate', () => {
    expect(() => load(pki.server.cert, pki.server.cert)).to.throw(/server\.key: block 1 .*is a CERTIFICATE/);
    expect(() => load(pki.server.key, pki.server.key)).to.throw(/server\.pem: block 1 .*is a PRIVATE KEY, expected CERTIFICATE/);
  });
});
