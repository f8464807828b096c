import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { crlReader, type CrlReader } from '../../src/tls/crl.ts';
import { CaBundleError, CrlError, PemError } from '../../src/tls/errors.ts';
import { CertificateVerifier, createCertificateVerifier, problemOfTlsError, type VerifierOptions } from '../../src/tls/verify.ts';
import { PKI_OIN_A, PKI_OIN_B, testPki, type Issued, type Pki } from '../support/pki.ts';

const OIN = /^[0-9]{20}$/;

function x509(issued: Issued | string): X509Certificate {
  return new X509Certificate(typeof issued === 'string' ? issued : issued.cert);
}

describe('tls/verify', () => {
  let pki: Pki;
  let verifier: CertificateVerifier;
  let now: number;
  let readCrls: CrlReader;

  function make(options: Partial<VerifierOptions> = {}): CertificateVerifier {
    return new CertificateVerifier({ caPem: pki.caBundle, caSource: 'ca.pem', crlPem: pki.crl, crlSource: 'crl.pem', readCrls, oinPattern: OIN, ...options });
  }

  before(async () => {
    pki = await testPki();
    readCrls = await crlReader();
    now = Date.now();
    verifier = make();
  });

  it('verifies a certificate of the intermediate and reads its OIN and DER digest', () => {
    const leaf = x509(pki.clients.valid);
    const verdict = verifier.verifyChain(leaf, [], now);
    expect(verdict).to.deep.equal({ ok: true, oin: PKI_OIN_A, sha256: leaf.fingerprint256.replaceAll(':', '').toLowerCase() });
  });

  it('reads the OIN from a multi-valued RDN', () => {
    const verdict = verifier.verifyChain(x509(pki.clients.validB), [], now);
    expect(verdict).to.include({ ok: true, oin: PKI_OIN_B });
  });

  it('verifies a certificate without an OIN but says why it has none', () => {
    expect(verifier.verifyChain(x509(pki.clients.noOin), [], now)).to.include({ ok: true, oinProblem: 'absent' });
    expect(verifier.verifyChain(x509(pki.clients.badOin), [], now)).to.include({ ok: true, oinProblem: 'pattern' });
    expect(verifier.verifyChain(x509(pki.clients.twoOins), [], now)).to.include({ ok: true, oinProblem: 'ambiguous' });
    expect(verifier.verifyChain(x509(pki.clients.twoOins), [], now)).not.to.have.property('oin');
  });

  it('refuses an expired certificate', () => {
    expect(verifier.verifyChain(x509(pki.clients.expired), [], now)).to.include({ ok: false, reason: 'expired' });
  });

  it('refuses a certificate not yet valid', () => {
    expect(verifier.verifyChain(x509(pki.clients.valid), [], Date.parse('2001-01-01T00:00:00Z'))).to.include({ ok: false, reason: 'not_yet_valid' });
  });

  it('refuses a certificate revoked by the second CRL of the file', () => {
    expect(pki.crl.indexOf(pki.rootCrl)).to.equal(0);
    expect(verifier.verifyChain(x509(pki.clients.revoked), [], now)).to.include({ ok: false, reason: 'revoked' });
  });

  it('refuses certificates of an unrelated CA and self-signed ones, even when they carry a valid OIN', () => {
    expect(verifier.verifyChain(x509(pki.clients.unrelated), [x509(pki.unrelatedRoot)], now)).to.include({ ok: false, reason: 'untrusted' });
    expect(verifier.verifyChain(x509(pki.clients.selfSigned), [], now)).to.include({ ok: false, reason: 'untrusted' });
  });

  it('does not take a presented root as a trust anchor', () => {
    const rootOnly = make({ caPem: pki.unrelatedRoot.cert, crlPem: undefined });
    expect(rootOnly.verifyChain(x509(pki.clients.valid), [x509(pki.intermediate), x509(pki.root)], now)).to.include({ ok: false, reason: 'untrusted' });
  });

  it('takes an intermediate the client presented when the bundle holds only the root', () => {
    const rootOnly = make({ caPem: pki.root.cert, crlPem: undefined });
    expect(rootOnly.verifyChain(x509(pki.clients.valid), [], now)).to.include({ ok: false, reason: 'untrusted' });
    expect(rootOnly.verifyChain(x509(pki.clients.valid), [x509(pki.intermediate)], now)).to.include({ ok: true, oin: PKI_OIN_A });
  });

  it('refuses every chain when the CRL of one of its issuers is missing', () => {
    const interOnly = make({ crlPem: pki.intermediateCrl });
    expect(interOnly.verifyChain(x509(pki.clients.valid), [], now)).to.include({ ok: false, reason: 'crl_missing' });
  });

  it('fails closed on CRLs past their nextUpdate', () => {
    const stale = make({ crlPem: pki.staleCrl });
    expect(stale.crlNextUpdateMs).to.equal(Date.parse('2020-01-08T00:00:00Z'));
    expect(stale.verifyChain(x509(pki.clients.valid), [], now)).to.include({ ok: false, reason: 'crl_expired' });
  });

  it('refuses a certificate whose extended key usage does not allow client authentication', () => {
    expect(verifier.verifyChain(x509(pki.server), [], now)).to.include({ ok: false, reason: 'wrong_purpose' });
  });

  it('verifies RSA chains and RSA-signed CRLs', () => {
    const rsa = make({ caPem: pki.rsa.root.cert, crlPem: pki.rsa.crl });
    expect(rsa.verifyChain(x509(pki.rsa.client), [], now)).to.include({ ok: true, oin: PKI_OIN_A });
    expect(rsa.verifyChain(x509(pki.rsa.revoked), [], now)).to.include({ ok: false, reason: 'revoked' });
  });

  it('refuses chains longer than the bound', () => {
    expect(make({ maxChainLength: 2 }).verifyChain(x509(pki.clients.valid), [], now)).to.include({ ok: false, reason: 'chain_too_long' });
  });

  it('lets a new verifier with a new CRL see a revocation the old one did not', () => {
    const before = make({ crlPem: pki.rootCrl + pki.intermediateCrlBefore });
    expect(before.verifyChain(x509(pki.clients.revoked), [], now)).to.include({ ok: true });
    expect(before.verifyChain(x509(pki.clients.revoked), [], now)).to.include({ ok: true });
    expect(make().verifyChain(x509(pki.clients.revoked), [], now)).to.include({ ok: false, reason: 'revoked' });
  });

  it('never reuses a cached verdict past the certificate expiry', () => {
    const leaf = x509(pki.clients.valid);
    const fresh = make({ crlPem: undefined, cacheTtlMs: 10 * 365 * 86_400_000 });
    expect(fresh.verifyChain(leaf, [], now)).to.include({ ok: true });
    expect(fresh.verifyChain(leaf, [], Date.parse(leaf.validTo) + 1000)).to.include({ ok: false, reason: 'expired' });
  });

  it('keeps its cache bounded', () => {
    const small = make({ cacheSize: 2 });
    for (const issued of [pki.clients.valid, pki.clients.validB, pki.clients.noOin, pki.clients.revoked]) small.verifyChain(x509(issued), [], now);
    expect(small.verifyChain(x509(pki.clients.revoked), [], now)).to.include({ ok: false, reason: 'revoked' });
  });

  it('counts the distinct CAs of the bundle and gives each CRL as its own PEM string', () => {
    const doubled = make({ caPem: pki.caBundle + pki.root.cert });
    expect(doubled.clientCas).to.equal(2);
    expect(doubled.crlPems).to.have.length(2);
    expect(doubled.crlPems.every((pem) => pem.match(/BEGIN X509 CRL/g)?.length === 1)).to.equal(true);
  });

  describe('at load', () => {
    it('refuses a bundle holding a certificate that is not a CA', () => {
      expect(() => make({ caPem: pki.caBundle + pki.clients.valid.cert })).to.throw(CaBundleError, /certificate 3 .*is not a CA certificate/);
    });

    it('refuses a bundle without a root', () => {
      expect(() => make({ caPem: pki.intermediate.cert, crlPem: undefined })).to.throw(CaBundleError, /no self-signed root/);
    });

    it('refuses a bundle holding a private key without echoing it', () => {
      let error: Error | undefined;
      try {
        make({ caPem: pki.caBundle + pki.clients.valid.key });
      } catch (caught) {
        error = caught as Error;
      }
      expect(error).to.be.instanceOf(PemError);
      expect(error?.message).to.match(/ca\.pem: block 3 .*is a PRIVATE KEY, expected CERTIFICATE/);
      const body = pki.clients.valid.key.split('\n')[1] as string;
      expect(error?.message).not.to.include(body.slice(0, 16));
    });

    it('refuses a CRL that no CA of the bundle signed', () => {
      expect(() => make({ crlPem: pki.crl + pki.unrelatedCrl })).to.throw(CrlError, /crl\.pem: CRL 3 is not signed by any CA/);
    });

    it('refuses a CRL whose signature does not verify', () => {
      const der = Buffer.from(pki.rootCrl.split('\n').filter((line) => !line.startsWith('-----')).join(''), 'base64');
      der[der.length - 5] = (der[der.length - 5] as number) ^ 0xff;
      const broken = `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`;
      expect(() => make({ crlPem: broken + pki.intermediateCrl })).to.throw(CrlError, /CRL 1 /);
    });

    it('refuses two CRLs of the same CA', () => {
      expect(() => make({ crlPem: pki.crl + pki.intermediateCrlBefore })).to.throw(CrlError, /CRLs 2 and 3 are from the same CA/);
    });

    it('loads the CRL reader itself when given CRLs, and refuses CRLs without one when built directly', async () => {
      const loaded = await createCertificateVerifier({ caPem: pki.caBundle, caSource: 'ca.pem', crlPem: pki.crl, crlSource: 'crl.pem', oinPattern: OIN });
      expect(loaded.verifyChain(x509(pki.clients.revoked), [], now)).to.include({ ok: false, reason: 'revoked' });
      expect(loaded.crlPems).to.have.length(make().crlPems.length);
      expect(() => make({ readCrls: undefined })).to.throw(TypeError, /crlPem needs readCrls/);
      const withoutCrls = await createCertificateVerifier({ caPem: pki.caBundle, caSource: 'ca.pem', oinPattern: OIN });
      expect(withoutCrls.crlPems).to.deep.equal([]);
    });

    it('refuses a CRL file with a certificate in it', () => {
      expect(() => make({ crlPem: pki.crl + pki.root.cert })).to.throw(PemError, /is a CERTIFICATE, expected X509 CRL/);
    });
  });

  it('names OpenSSL verify errors like its own problems', () => {
    expect(problemOfTlsError('CERT_HAS_EXPIRED')).to.equal('expired');
    expect(problemOfTlsError('CERT_REVOKED')).to.equal('revoked');
    expect(problemOfTlsError('UNABLE_TO_GET_ISSUER_CERT_LOCALLY')).to.equal('untrusted');
    expect(problemOfTlsError(null)).to.equal('untrusted');
  });
});
