import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import { certificateSource } from '../../src/http/client-cert.ts';
import { parsePeerAddress } from '../../src/ip/address.ts';
import { CidrSet, parseCidr } from '../../src/ip/cidr.ts';
import { createCertificateVerifier, type CertificateVerifier } from '../../src/tls/verify.ts';
import { testPki, type Pki } from '../support/pki.ts';
import { headerForms } from '../tls/header-forms.ts';

/** A request as the gate sees it: the header's values, one per line, on a plain socket. */
function requestWith(values: string[] | undefined): IncomingMessage {
  return { headersDistinct: values === undefined ? {} : { 'x-client-cert': values }, socket: {} } as unknown as IncomingMessage;
}

describe('http/client-cert: the certificate of a request', () => {
  let pki: Pki;
  let before: CertificateVerifier;
  let after: CertificateVerifier;
  const trusted = parsePeerAddress('127.0.0.2')!;
  const other = parsePeerAddress('127.0.0.1')!;

  const verifier = (crlPem: string) =>
    createCertificateVerifier({ caPem: pki.caBundle, caSource: 'bundle', crlPem, crlSource: 'crl', oinPattern: /^[0-9]{20}$/ });

  it('judges a header value it has parsed before with the verifier now in use', async () => {
    pki = await testPki();
    before = await verifier(pki.rootCrl + pki.intermediateCrlBefore);
    after = await verifier(pki.crl);
    let current = before;
    const source = certificateSource({ verifier: () => current, header: 'x-client-cert', trustedProxies: new CidrSet([parseCidr('127.0.0.2/32')]) });
    const request = requestWith([headerForms(pki.clients.revoked.cert).nginx]);
    expect(source(request, trusted)).to.include({ presented: true, verified: true });
    current = after;
    expect(source(request, trusted)).to.include({ presented: true, verified: false, detail: 'revoked' });
  });

  it('keeps giving the right verdict for more distinct values than it keeps parsed', () => {
    const source = certificateSource({ verifier: () => after, header: 'x-client-cert', trustedProxies: new CidrSet([parseCidr('127.0.0.2/32')]) });
    const valid = headerForms(pki.clients.valid.cert).nginx;
    for (let i = 0; i < 300; i++) {
      // Distinct values that all fail to parse, pushing the valid one out.
      expect(source(requestWith([`garbage-${i}`]), trusted).verified).to.equal(false);
      if (i % 100 === 0) expect(source(requestWith([valid]), trusted).verified).to.equal(true);
    }
    expect(source(requestWith([valid]), trusted).verified).to.equal(true);
  });

  it('refuses a repeated header and ignores the header from an untrusted peer', () => {
    const source = certificateSource({ verifier: () => after, header: 'x-client-cert', trustedProxies: new CidrSet([parseCidr('127.0.0.2/32')]) });
    const valid = headerForms(pki.clients.valid.cert).nginx;
    expect(source(requestWith([valid, valid]), trusted)).to.include({ presented: true, verified: false, detail: 'repeated' });
    expect(source(requestWith([valid]), other)).to.deep.equal({ presented: false, verified: false });
    expect(source(requestWith(undefined), trusted)).to.deep.equal({ presented: false, verified: false });
  });
});
