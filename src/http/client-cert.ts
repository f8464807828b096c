import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { IpAddress } from '../ip/address.ts';
import type { CidrSet } from '../ip/cidr.ts';
import { factsOfVerdict, NO_CERTIFICATE, type CertificateFacts } from '../tls/facts.ts';
import { parseClientCertHeader, type HeaderCertificate } from '../tls/header.ts';
import type { CertificateVerifier } from '../tls/verify.ts';
import { SocketVerdicts } from './socket-verdicts.ts';
import { peerChain } from './tls-server.ts';

/** Where a request's client certificate comes from; the gate asks it once per request. */
export type CertificateSource = (request: IncomingMessage, peer: IpAddress | null) => CertificateFacts;

export interface CertificateSourceOptions {
  /** The verifier of the CA bundle and CRLs in use; undefined: no certificate can verify. */
  readonly verifier: () => CertificateVerifier | undefined;
  /** OINGATE_CLIENT_CERT_HEADER, lower case; believed only from a trusted proxy. */
  readonly header?: string;
  readonly trustedProxies: CidrSet;
  /**
   * The facts of a TLS connection of our own listener (TlsServer#facts).
   * Unset: the peer's certificate is verified here with `verifier` (an
   * embedding application's own HTTPS server, whose handshake verdict was
   * made against CAs that are not ours).
   */
  readonly socketFacts?: (socket: TLSSocket) => CertificateFacts;
  readonly now?: () => number;
}

/**
 * Parsed header values kept: parsing the PEM or DER costs 0.25-0.8 ms, far
 * more than the rest of the decision, and a proxy sends the same few values
 * again and again. Only the parse is kept (a pure function of the value);
 * the verifier judges every request, with its own bounded verdict cache.
 * At most 256 values of at most 32 KiB each.
 */
const PARSED_HEADERS = 256;

function isTlsSocket(socket: unknown): socket is TLSSocket {
  return (socket as { encrypted?: unknown }).encrypted === true && typeof (socket as TLSSocket).getPeerX509Certificate === 'function';
}

/**
 * The certificate facts of a request. From a trusted proxy with the header
 * configured, the header speaks for the client (the proxy's own TLS
 * certificate, if any, names the proxy, not the caller); from any other peer
 * the header is ignored and only the peer's own TLS certificate counts.
 * Either way oingate verifies the certificate itself.
 */
export function certificateSource(options: CertificateSourceOptions): CertificateSource {
  const now = options.now ?? Date.now;
  const { header, trustedProxies } = options;
  const parsed = new Map<string, HeaderCertificate>();

  function parse(value: readonly string[]): HeaderCertificate {
    // A repeated header is refused by the parser; only a single value is worth keeping.
    if (value.length !== 1) return parseClientCertHeader(value);
    const text = value[0] as string;
    let result = parsed.get(text);
    if (result === undefined) {
      result = parseClientCertHeader(text);
      if (parsed.size >= PARSED_HEADERS) parsed.delete(parsed.keys().next().value as string);
      parsed.set(text, result);
    }
    return result;
  }

  const verdicts = new SocketVerdicts<CertificateVerifier>();

  /** An embedding application's TLS connection: the peer's certificate against our CAs, never its handshake's verdict. */
  function ownVerdict(socket: TLSSocket): CertificateFacts {
    const verifier = options.verifier();
    if (verifier === undefined) return NO_CERTIFICATE;
    const at = now();
    const cached = verdicts.fresh(socket, verifier, at);
    if (cached !== undefined) return cached;
    const peer: X509Certificate | undefined = socket.getPeerX509Certificate();
    return verdicts.keep(socket, verifier, at, peer === undefined ? NO_CERTIFICATE : factsOfVerdict(verifier.verifyChain(peer, peerChain(socket), at)));
  }

  return function certificateOf(request, peer) {
    if (header !== undefined && peer !== null && trustedProxies.contains(peer)) {
      const verifier = options.verifier();
      const value = request.headersDistinct[header];
      if (value === undefined) return NO_CERTIFICATE;
      const certificate = parse(value);
      if (certificate.kind === 'absent') return NO_CERTIFICATE;
      if (certificate.kind === 'invalid') return { presented: true, verified: false, reason: 'certificate_invalid', detail: certificate.problem };
      // No verifier means nothing could ever verify: a presented certificate is invalid.
      if (verifier === undefined) return { presented: true, verified: false, reason: 'certificate_invalid' };
      return factsOfVerdict(verifier.verifyChain(certificate.leaf, certificate.chain, now()));
    }
    const socket = request.socket;
    if (!isTlsSocket(socket)) return NO_CERTIFICATE;
    return options.socketFacts ? options.socketFacts(socket) : ownVerdict(socket);
  };
}
