import { expect } from 'chai';
import { PemError } from '../../src/tls/errors.ts';
import { certificatesFromPem, parsePem, pemText, toPem } from '../../src/tls/pem.ts';
import { testPki, type Pki } from '../support/pki.ts';

function expectPemError(run: () => unknown, pattern: RegExp): PemError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).to.be.instanceOf(PemError);
  const error = caught as PemError;
  expect(error.code).to.equal('ERR_TLS_PEM');
  expect(error.message).to.match(pattern);
  return error;
}

describe('tls/pem', () => {
  let pki: Pki;
  before(async () => {
    pki = await testPki();
  });

  it('splits a bundle into its certificates, in order', () => {
    const certificates = certificatesFromPem(pki.caBundle, 'ca.pem');
    expect(certificates.map((certificate) => certificate.subject)).to.deep.equal([
      'C=NL\nO=oingate test\nCN=Test Root',
      'C=NL\nO=oingate test\nCN=Test Intermediate',
    ]);
  });

  it('allows explanatory text and CRLF line ends between blocks', () => {
    const text = `subject=CN = Test Root\r\n${pki.root.cert.replaceAll('\n', '\r\n')}\nsome words\n${pki.intermediate.cert}`;
    expect(certificatesFromPem(text, 'ca.pem')).to.have.length(2);
  });

  it('round-trips DER through toPem', () => {
    const [block] = parsePem(pki.rootCrl, 'crl.pem', ['X509 CRL']);
    expect(parsePem(toPem(block!.der, 'X509 CRL'), 'again', ['X509 CRL'])[0]!.der.equals(block!.der)).to.equal(true);
  });

  it('refuses a file without any block, naming it', () => {
    expectPemError(() => parsePem('hello\n', 'ca.pem', ['CERTIFICATE']), /^ca\.pem: contains no CERTIFICATE block$/);
    expectPemError(() => parsePem('', 'ca.pem', ['CERTIFICATE']), /contains no CERTIFICATE block/);
  });

  it('refuses a block without an END line', () => {
    const cut = pki.root.cert.slice(0, pki.root.cert.indexOf('-----END'));
    expectPemError(() => parsePem(cut, 'ca.pem', ['CERTIFICATE']), /CERTIFICATE block from line 1 has no END line/);
  });

  it('refuses a block closed by another label or opened inside another', () => {
    const wrongEnd = pki.root.cert.replace('-----END CERTIFICATE-----', '-----END X509 CRL-----');
    expectPemError(() => parsePem(wrongEnd, 'ca.pem', ['CERTIFICATE']), /not closed by its own END line/);
    const nested = pki.root.cert.replace('-----END CERTIFICATE-----', pki.intermediate.cert);
    expectPemError(() => parsePem(nested, 'ca.pem', ['CERTIFICATE']), /not closed by its own END line/);
  });

  it('refuses a stray END marker outside a block', () => {
    expectPemError(() => parsePem(`${pki.root.cert}-----END CERTIFICATE-----\n`, 'ca.pem', ['CERTIFICATE']), /line \d+: PEM marker outside a block/);
  });

  it('refuses bodies that are not canonical base64', () => {
    const lines = pki.root.cert.split('\n');
    const bad = [lines[0], `${lines[1]!.slice(0, 10)}*${lines[1]!.slice(11)}`, ...lines.slice(2)].join('\n');
    expectPemError(() => parsePem(bad, 'ca.pem', ['CERTIFICATE']), /not base64/);
    const truncated = [lines[0], lines[1]!.slice(0, 63), ...lines.slice(-2)].join('\n');
    expectPemError(() => parsePem(truncated, 'ca.pem', ['CERTIFICATE']), /block 1 \(CERTIFICATE\) is not valid base64/);
    expectPemError(() => parsePem('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'ca.pem', ['CERTIFICATE']), /not valid base64/);
  });

  it('refuses encrypted blocks with RFC 1421 headers', () => {
    const encrypted = '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n';
    expectPemError(() => parsePem(encrypted, 'key.pem', ['RSA PRIVATE KEY']), /has PEM headers/);
  });

  it('refuses a block with an unexpected label without echoing its content', () => {
    const error = expectPemError(() => parsePem(pki.root.cert + pki.server.key, 'ca.pem', ['CERTIFICATE']), /block 2 \(line \d+\) is a PRIVATE KEY, expected CERTIFICATE/);
    const keyBody = pki.server.key.split('\n').slice(1, -2).join('');
    expect(error.message).not.to.include(keyBody.slice(0, 12));
  });

  it('refuses a block that is base64 but not a certificate', () => {
    const garbage = toPem(Buffer.from('not a certificate at all'), 'CERTIFICATE');
    expectPemError(() => certificatesFromPem(pki.root.cert + garbage, 'ca.pem'), /certificate 2 is not a valid X\.509 certificate/);
  });

  it('refuses a certificate followed by trailing bytes inside its block', () => {
    const der = Buffer.from(pki.root.cert.split('\n').slice(1, -2).join(''), 'base64');
    const padded = toPem(Buffer.concat([der, Buffer.from([0, 0])]), 'CERTIFICATE');
    expectPemError(() => certificatesFromPem(padded, 'ca.pem'), /certificate 1 is not a valid X\.509 certificate/);
  });

  it('refuses binary files (a DER certificate) as not PEM', () => {
    const der = Buffer.from(pki.root.cert.split('\n').slice(1, -2).join(''), 'base64');
    expectPemError(() => pemText(der, 'ca.der'), /^ca\.der: is not PEM text/);
    expectPemError(() => pemText(Buffer.from('a\u0000b'), 'ca.der'), /NUL/);
  });
});
