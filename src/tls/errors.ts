/**
 * Errors of TLS material refused at load. Each names the file (or other
 * source) and what is wrong with it, never the material itself: a key file's
 * bytes must not reach a log line.
 */
abstract class TlsMaterialError extends Error {
  abstract readonly code: string;
  readonly source: string;

  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.source = source;
  }
}

/** A file that is not the PEM it should be. */
export class PemError extends TlsMaterialError {
  readonly code = 'ERR_TLS_PEM';
  override readonly name = 'PemError';
}

/** A CA bundle that cannot serve as trust anchors (no root, a non-CA certificate, an unparseable one). */
export class CaBundleError extends TlsMaterialError {
  readonly code = 'ERR_TLS_CA_BUNDLE';
  override readonly name = 'CaBundleError';
}

/** A CRL that cannot be enforced (unparseable, not signed by a bundle CA, unknown critical extension). */
export class CrlError extends TlsMaterialError {
  readonly code = 'ERR_TLS_CRL';
  override readonly name = 'CrlError';
}

/** A server certificate and key that do not belong together, or a key that cannot be read. */
export class ServerPairError extends TlsMaterialError {
  readonly code = 'ERR_TLS_SERVER_PAIR';
  override readonly name = 'ServerPairError';
}

/** A TLS file that cannot be read at all. */
export class TlsFileError extends TlsMaterialError {
  readonly code = 'ERR_TLS_FILE';
  override readonly name = 'TlsFileError';
}
