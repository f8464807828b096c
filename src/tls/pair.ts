import { createPrivateKey, type X509Certificate } from 'node:crypto';
import { ServerPairError } from './errors.ts';
import { certificatesFromPem, parsePem, toPem } from './pem.ts';

/** A server certificate (with the chain that follows it in its file) and its private key, checked to belong together. */
export interface ServerPair {
  readonly certificate: X509Certificate;
  /** The certificate file, leaf first, as Node's `cert` option takes it. */
  readonly certPem: string;
  readonly keyPem: string;
  readonly notAfterMs: number;
}

const KEY_LABELS = ['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PARAMETERS', 'ENCRYPTED PRIVATE KEY'];

/**
 * Reads a server certificate file and key file. The key must be one
 * unencrypted private key (there is no passphrase setting) that matches the
 * first certificate: a mismatched pair would only fail later, in every
 * handshake. Errors name the file, never the key.
 */
export function loadServerPair(certText: string, certSource: string, keyText: string, keySource: string): ServerPair {
  const certificates = certificatesFromPem(certText, certSource);
  const keys = parsePem(keyText, keySource, KEY_LABELS).filter((block) => block.label !== 'EC PARAMETERS');
  if (keys.length !== 1) throw new ServerPairError(keySource, `holds ${keys.length} private keys, expected one`);
  const block = keys[0] as (typeof keys)[number];
  if (block.label === 'ENCRYPTED PRIVATE KEY') throw new ServerPairError(keySource, 'is encrypted; a passphrase is not supported');
  let key;
  try {
    const format = block.label === 'PRIVATE KEY' ? 'pkcs8' : block.label === 'RSA PRIVATE KEY' ? 'pkcs1' : 'sec1';
    key = createPrivateKey({ key: block.der, format: 'der', type: format });
  } catch {
    throw new ServerPairError(keySource, 'is not a readable private key');
  }
  const certificate = certificates[0] as X509Certificate;
  if (!certificate.checkPrivateKey(key)) throw new ServerPairError(keySource, `does not match the certificate in ${certSource}`);
  return {
    certificate,
    certPem: certificates.map((entry) => entry.toString()).join(''),
    keyPem: toPem(block.der, block.label),
    notAfterMs: new Date(certificate.validTo).getTime(),
  };
}
