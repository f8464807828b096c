import { readPemFile } from './files.ts';
import { createCertificateVerifier, type CertificateVerifier } from './verify.ts';
import { WatchedMaterial } from './watched.ts';

export interface ClientCaFiles {
  /** PEM bundle of the CAs client certificates must chain to (OINGATE_TLS_CLIENT_CA). */
  readonly clientCaFile: string;
  /** PEM file with one or more CRLs (OINGATE_TLS_CRL). */
  readonly crlFile?: string;
  readonly oinPattern: RegExp;
}

/** A verifier from the CA bundle and CRL files; refuses them with an error naming the file. */
export async function loadClientCas(files: ClientCaFiles): Promise<CertificateVerifier> {
  return createCertificateVerifier({
    caPem: await readPemFile(files.clientCaFile),
    caSource: files.clientCaFile,
    ...(files.crlFile !== undefined ? { crlPem: await readPemFile(files.crlFile), crlSource: files.crlFile } : {}),
    oinPattern: files.oinPattern,
  });
}

/**
 * The CA bundle and CRLs, watched: `current` is always the verifier of the
 * last good pair of files. For certificates from a front proxy's header
 * when oingate itself does not terminate TLS; the TLS listener keeps its own.
 */
export function watchClientCas(
  files: ClientCaFiles,
  options: { readonly pollMs?: number; readonly onError?: (error: Error) => void; readonly apply?: (next: CertificateVerifier) => void } = {},
): Promise<WatchedMaterial<CertificateVerifier>> {
  return WatchedMaterial.open({
    files: [files.clientCaFile, ...(files.crlFile !== undefined ? [files.crlFile] : [])],
    load: () => loadClientCas(files),
    ...options,
  });
}
