import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { factsOfHeader } from '../../src/tls/facts.ts';
import { parseClientCertHeader, type HeaderCertificate } from '../../src/tls/header.ts';
import { createCertificateVerifier, type CertificateVerifier } from '../../src/tls/verify.ts';
import { PKI_OIN_A, testPki, type Pki } from '../support/pki.ts';
import { headerForms } from './header-forms.ts';

function leafOf(parsed: HeaderCertificate): string {
  expect(parsed.kind).to.equal('present');
  return (parsed as Extract<HeaderCertificate, { kind: 'present' }>).leaf.fingerprint256;
}

function problemOf(parsed: HeaderCertificate): string {
  expect(parsed.kind).to.equal('invalid');
  return (parsed as Extract<HeaderCertificate, { kind: 'invalid' }>).problem;
}

describe('tls/header', () => {
  let pki: Pki;
  let valid: X509Certificate;
  before(async () => {
    pki = await testPki();
    valid = new X509Certificate(pki.clients.valid.cert);
  });

  it('reads the leaf from each form the front proxies send', () => {
    const forms = headerForms(pki.clients.valid.cert, pki.intermediate.cert);
    for (const value of Object.values(forms)) expect(leafOf(parseClientCertHeader(value))).to.equal(valid.fingerprint256);
  });

  it('takes the intermediates that come with the leaf, without the leaf again', () => {
    const forms = headerForms(pki.clients.valid.cert, pki.intermediate.cert);
    const intermediate = new X509Certificate(pki.intermediate.cert).fingerprint256;
    for (const value of [forms.envoy, forms.traefikChain, forms.nginxChain]) {
      const parsed = parseClientCertHeader(value) as Extract<HeaderCertificate, { kind: 'present' }>;
      expect(parsed.chain.map((certificate) => certificate.fingerprint256), value.slice(0, 20)).to.deep.equal([intermediate]);
    }
  });

  it('counts only the last XFCC element, the one the nearest proxy added', () => {
    const forged = headerForms(pki.clients.valid.cert).envoy;
    const own = headerForms(pki.clients.noOin.cert).envoy;
    const parsed = parseClientCertHeader(`${forged},${own}`);
    expect(leafOf(parsed)).to.equal(new X509Certificate(pki.clients.noOin.cert).fingerprint256);
    // Node joins a repeated header with ", ": still the last element.
    expect(leafOf(parseClientCertHeader(`${forged}, ${own}`))).to.equal(new X509Certificate(pki.clients.noOin.cert).fingerprint256);
  });

  it('reads XFCC values whose quotes hold commas, semicolons and escaped quotes', () => {
    const cert = encodeURIComponent(pki.clients.valid.cert);
    const value = `Hash=abc;Subject="CN=a\\"b,O=c;d";Cert="${cert}";URI=spiffe://x`;
    expect(leafOf(parseClientCertHeader(value))).to.equal(valid.fingerprint256);
  });

  it('refuses an XFCC element without a certificate rather than reading an earlier one', () => {
    const earlier = headerForms(pki.clients.valid.cert).envoy;
    expect(problemOf(parseClientCertHeader(`${earlier},By=spiffe://proxy;Hash=abc`))).to.equal('xfcc_no_cert');
  });

  it('refuses malformed XFCC', () => {
    const cert = encodeURIComponent(pki.clients.valid.cert);
    expect(problemOf(parseClientCertHeader(`Cert="${cert}`))).to.equal('xfcc_malformed');
    expect(problemOf(parseClientCertHeader(`Cert="${cert}";Cert="${cert}"`))).to.equal('xfcc_malformed');
    expect(problemOf(parseClientCertHeader(`Cert=${cert};garbage`))).to.equal('xfcc_malformed');
    expect(problemOf(parseClientCertHeader(`Cert=a"${cert}"`))).to.equal('xfcc_malformed');
    expect(problemOf(parseClientCertHeader(`Cert="${encodeURIComponent(pki.clients.valid.cert + pki.intermediate.cert)}"`))).to.equal('too_many_certificates');
  });

  it('treats a missing or empty header as no certificate', () => {
    expect(parseClientCertHeader(undefined)).to.deep.equal({ kind: 'absent' });
    expect(parseClientCertHeader('  ')).to.deep.equal({ kind: 'absent' });
  });

  it('refuses a header given twice', () => {
    const value = headerForms(pki.clients.valid.cert).nginx;
    expect(problemOf(parseClientCertHeader([value, value]))).to.equal('repeated');
  });

  it('refuses malformed values as invalid, never by throwing', () => {
    const { nginx, traefik } = headerForms(pki.clients.valid.cert);
    const hostile = [
      '%ZZ',
      `${nginx}%E0%A4%A`,
      `hello${nginx}`,
      `${nginx}trailing`,
      encodeURIComponent(pki.rootCrl),
      encodeURIComponent(pki.clients.valid.key),
      `${traefik}*`,
      `${traefik.slice(0, -4)}`,
      `${traefik},`,
      Buffer.from('not a certificate').toString('base64'),
      Buffer.concat([Buffer.from(traefik, 'base64'), Buffer.from([0])]).toString('base64'),
      '-----BEGIN CERTIFICATE-----',
      '"""',
    ];
    for (const value of hostile) {
      expect(() => parseClientCertHeader(value), value.slice(0, 30)).not.to.throw();
      expect(parseClientCertHeader(value).kind, value.slice(0, 30)).to.equal('invalid');
    }
  });

  it('bounds the size and the number of certificates read', () => {
    const { traefik } = headerForms(pki.clients.valid.cert);
    expect(problemOf(parseClientCertHeader('A'.repeat(40_000)))).to.equal('too_large');
    expect(problemOf(parseClientCertHeader(`Cert="${'"'.repeat(40_000)}`))).to.equal('too_large');
    expect(problemOf(parseClientCertHeader(Array(9).fill(traefik).join(',')))).to.equal('too_many_certificates');
    expect(problemOf(parseClientCertHeader(traefik, { maxBytes: 100 }))).to.equal('too_large');
  });

  it('decides quickly on a hostile value of the largest size read', () => {
    const started = performance.now();
    for (const value of ['"'.repeat(32_000), `Cert=${'%'.repeat(32_000)}`, `Cert="${';'.repeat(31_990)}"`, ','.repeat(32_000)]) {
      parseClientCertHeader(value);
    }
    expect(performance.now() - started).to.be.below(1000);
  });

  describe('facts', () => {
    let verifier: CertificateVerifier;
    before(async () => {
      verifier = await createCertificateVerifier({ caPem: pki.caBundle, caSource: 'ca', crlPem: pki.crl, crlSource: 'crl', oinPattern: /^[0-9]{20}$/ });
    });

    it('verifies a header certificate and gives its OIN and digest', () => {
      const facts = factsOfHeader(headerForms(pki.clients.valid.cert).traefik, verifier, Date.now());
      expect(facts).to.deep.equal({ presented: true, verified: true, oin: PKI_OIN_A, sha256: valid.fingerprint256.replaceAll(':', '').toLowerCase() });
    });

    it('says why a header certificate does not count', () => {
      const now = Date.now();
      expect(factsOfHeader(headerForms(pki.clients.revoked.cert).nginx, verifier, now)).to.include({ presented: true, verified: false, reason: 'certificate_invalid', detail: 'revoked' });
      expect(factsOfHeader(headerForms(pki.clients.noOin.cert).envoy, verifier, now)).to.include({ verified: true, reason: 'certificate_no_oin', detail: 'absent' });
      expect(factsOfHeader('%ZZ', verifier, now)).to.deep.equal({ presented: true, verified: false, reason: 'certificate_invalid', detail: 'malformed' });
      expect(factsOfHeader(undefined, verifier, now)).to.deep.equal({ presented: false, verified: false });
    });
  });
});
