import { expect } from 'chai';
import { loadSettings, settingsFromOptions, SettingsError } from '../src/settings.ts';

function refusal(env: Record<string, string>): SettingsError | undefined {
  try {
    loadSettings(env);
    return undefined;
  } catch (error) {
    if (error instanceof SettingsError) return error;
    throw error;
  }
}

describe('settings: TLS and client certificates (contract §9)', () => {
  it('takes the server pair only both together', () => {
    expect(refusal({ OINGATE_TLS_CERT: 'server.pem' })?.variable).to.equal('OINGATE_TLS_KEY');
    expect(refusal({ OINGATE_TLS_KEY: 'server.key' })?.variable).to.equal('OINGATE_TLS_CERT');
    expect(loadSettings({ OINGATE_TLS_CERT: 'server.pem', OINGATE_TLS_KEY: 'server.key' }).tls).to.deep.equal({ certFile: 'server.pem', keyFile: 'server.key' });
    expect(loadSettings({}).tls).to.equal(undefined);
  });

  it('refuses a CRL or a certificate header without the CA bundle that verifies them', () => {
    expect(refusal({ OINGATE_TLS_CRL: 'crl.pem' })?.variable).to.equal('OINGATE_TLS_CRL');
    expect(refusal({ OINGATE_CLIENT_CERT_HEADER: 'x-client-cert' })?.variable).to.equal('OINGATE_CLIENT_CERT_HEADER');
  });

  it('refuses a certificate header that is not a header name, and keeps a good one in lower case', () => {
    const proxies = { OINGATE_TRUSTED_PROXIES: '10.0.0.0/8' };
    expect(refusal({ ...proxies, OINGATE_TLS_CLIENT_CA: 'ca.pem', OINGATE_CLIENT_CERT_HEADER: 'x client cert' })?.message).to.include('"x client cert"');
    expect(loadSettings({ ...proxies, OINGATE_TLS_CLIENT_CA: 'ca.pem', OINGATE_CLIENT_CERT_HEADER: 'X-Client-Cert' }).clientCertHeader).to.equal('x-client-cert');
  });

  it('refuses a certificate header that no trusted proxy could ever send', () => {
    const error = refusal({ OINGATE_TLS_CLIENT_CA: 'ca.pem', OINGATE_CLIENT_CERT_HEADER: 'x-client-cert' });
    expect(error?.variable).to.equal('OINGATE_CLIENT_CERT_HEADER');
    expect(error?.message).to.include('OINGATE_TRUSTED_PROXIES');
  });

  it('takes the library options clientCertHeader, tlsClientCa and tlsCrl', () => {
    const settings = settingsFromOptions({ clientCertHeader: 'X-Forwarded-Client-Cert', tlsClientCa: 'ca.pem', tlsCrl: 'crl.pem', trustedProxies: '10.0.0.1/32' });
    expect(settings.clientCertHeader).to.equal('x-forwarded-client-cert');
    expect(settings.tlsClientCaFile).to.equal('ca.pem');
    expect(settings.tlsCrlFile).to.equal('crl.pem');
    expect(() => settingsFromOptions({ tlsCrl: 'crl.pem' })).to.throw(SettingsError, /^tlsCrl:/);
  });
});
