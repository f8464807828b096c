import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { IpAddress } from '../ip/address.ts';
import type { CidrSet } from '../ip/cidr.ts';
import { factsOfHeader, factsOfVerdict, NO_CERTIFICATE, type CertificateFacts } from '../tls/facts.ts';
import type { CertificateVerifier } from '../tls/verify.ts';
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

/** How long the verdict on a connection's certificate is reused before it is judged again. */
const SOCKET_FACTS_TTL_MS = 60_000;

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
  const verdicts = new WeakMap<TLSSocket, { readonly verifier: CertificateVerifier; readonly atMs: number; readonly facts: CertificateFacts }>();

  /** An embedding application's TLS connection: the peer's certificate against our CAs, never its handshake's verdict. */
  function ownVerdict(socket: TLSSocket): CertificateFacts {
    const verifier = options.verifier();
    if (verifier === undefined) return NO_CERTIFICATE;
    const at = now();
    const cached = verdicts.get(socket);
    if (cached && cached.verifier === verifier && at - cached.atMs < SOCKET_FACTS_TTL_MS) return cached.facts;
    const peer: X509Certificate | undefined = socket.getPeerX509Certificate();
    const facts = peer === undefined ? NO_CERTIFICATE : factsOfVerdict(verifier.verifyChain(peer, peerChain(socket), at));
    verdicts.set(socket, { verifier, atMs: at, facts });
    return facts;
  }

  return function certificateOf(request, peer) {
    if (header !== undefined && peer !== null && trustedProxies.contains(peer)) {
      const verifier = options.verifier();
      const value = request.headersDistinct[header];
      if (value === undefined) return NO_CERTIFICATE;
      // No verifier means nothing could ever verify: a presented header is invalid.
      if (verifier === undefined) return { presented: true, verified: false, reason: 'certificate_invalid' };
      return factsOfHeader(value, verifier, now());
    }
    const socket = request.socket;
    if (!isTlsSocket(socket)) return NO_CERTIFICATE;
    return options.socketFacts ? options.socketFacts(socket) : ownVerdict(socket);
  };
}
