import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { certificateOin } from '../../src/tls/oin.ts';
import { PKI_OIN_A, PKI_OIN_B, testPki, type Pki } from '../support/pki.ts';

const OIN = /^[0-9]{20}$/;

describe('tls/oin', () => {
  let pki: Pki;
  before(async () => {
    pki = await testPki();
  });

  const oinOf = (pem: string, pattern = OIN) => certificateOin(new X509Certificate(pem), pattern);

  it('reads the Subject serialNumber as the OIN', () => {
    expect(oinOf(pki.clients.valid.cert)).to.deep.equal({ ok: true, oin: PKI_OIN_A });
  });

  it('reads it from a multi-valued RDN, where the subject string joins it with " + "', () => {
    expect(new X509Certificate(pki.clients.validB.cert).subject).to.include(`Tenant B + serialNumber=${PKI_OIN_B}`);
    expect(oinOf(pki.clients.validB.cert)).to.deep.equal({ ok: true, oin: PKI_OIN_B });
  });

  it('finds none in a certificate without serialNumber', () => {
    expect(oinOf(pki.clients.noOin.cert)).to.deep.equal({ ok: false, problem: 'absent' });
  });

  it('refuses a serialNumber that does not match the pattern', () => {
    expect(oinOf(pki.clients.badOin.cert)).to.deep.equal({ ok: false, problem: 'pattern' });
    expect(oinOf(pki.clients.badOin.cert, /^[A-Z]{3}-[0-9]{3}$/)).to.deep.equal({ ok: true, oin: 'ABC-123' });
  });

  it('refuses a subject with two serialNumber attributes rather than choosing one', () => {
    expect(oinOf(pki.clients.twoOins.cert)).to.deep.equal({ ok: false, problem: 'ambiguous' });
  });

  it('gives the same answer every time with a global pattern', () => {
    const global = /^[0-9]{20}$/g;
    expect(oinOf(pki.clients.valid.cert, global)).to.deep.equal({ ok: true, oin: PKI_OIN_A });
    expect(oinOf(pki.clients.valid.cert, global)).to.deep.equal({ ok: true, oin: PKI_OIN_A });
  });
});
