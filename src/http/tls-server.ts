import { constants, type X509Certificate } from 'node:crypto';
import type { RequestListener } from 'node:http';
import { createServer, type Server, type ServerOptions } from 'node:https';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { Logger } from '../observe/logger.ts';
import { loadClientCas } from '../tls/client-cas.ts';
import { TlsFileError } from '../tls/errors.ts';
import { factsOfVerdict, NO_CERTIFICATE, type CertificateFacts } from '../tls/facts.ts';
import { readPemFile } from '../tls/files.ts';
import { certificateOin } from '../tls/oin.ts';
import { loadServerPair, type ServerPair } from '../tls/pair.ts';
import { certificateFromDer } from '../tls/pem.ts';
import { certificateSha256, problemOfTlsError, type CertificateVerifier } from '../tls/verify.ts';
import { WatchedMaterial } from '../tls/watched.ts';
import { SocketVerdicts } from './socket-verdicts.ts';

export interface TlsServerOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** Set: every client is asked for a certificate, which must chain to this bundle. */
  readonly clientCaFile?: string;
  /** CRLs enforced on client certificates; needs `clientCaFile`. */
  readonly crlFile?: string;
  /** The OIN's form (default `^[0-9]{20}$`). */
  readonly oinPattern?: RegExp;
  /** How often the files are checked for a change (default 500 ms). */
  readonly pollMs?: number;
  /** A handshake not finished by then is cut (default 10 s; Node's own is 120 s). */
  readonly handshakeTimeoutMs?: number;
  /** A refused reload (the old material stays). */
  readonly onError?: (error: Error) => void;
  /** A failed TLS handshake. */
  readonly onHandshakeError?: (error: Error) => void;
  readonly logger?: Logger;
  /** More options for the HTTPS server (timeouts, requireHostHeader); the TLS ones above win. */
  readonly httpOptions?: ServerOptions;
  /** The clock certificates are judged by (default Date.now); for tests of time passing on one connection. */
  readonly now?: () => number;
}

export interface TlsStatus {
  /** ISO-8601 notAfter of the server certificate in use. */
  readonly certificateNotAfter: string;
  /** CA certificates client certificates may chain to; null when clients are not asked for one. */
  readonly clientCas: number | null;
  /** ISO-8601 earliest nextUpdate of the CRLs in use; null without CRLs. */
  readonly crlNextUpdate: string | null;
  /** The errors of the last refused reloads, null once every file loads again. */
  readonly lastError: string | null;
  readonly handshakeFailures: number;
}

export interface TlsServer {
  readonly server: Server;
  /** The verifier of the CA bundle and CRLs in use (for certificates from a header as well). */
  readonly verifier: CertificateVerifier | undefined;
  status(): TlsStatus;
  /** The client certificate of a connection of this server, verified against the material now in use. */
  facts(socket: TLSSocket): CertificateFacts;
  /** Re-reads the files now; false when one was refused. */
  reload(): Promise<boolean>;
  /** Stops watching the files (the caller closes the server, so that it can drain). */
  close(): void;
}

const DEFAULT_OIN_PATTERN = /^[0-9]{20}$/;

/**
 * The public HTTPS listener with live TLS material. TLS 1.2 and later only,
 * without renegotiation (a renegotiated handshake could change the peer's
 * certificate under a connection already judged).
 *
 * With a client CA bundle every client is asked for a certificate, but the
 * handshake never fails for a bad one (`rejectUnauthorized: false`): the
 * request then reaches the gate, which refuses it with the usual 403 JSON
 * answer and logs why (`facts`), instead of a handshake error the client
 * cannot read and we cannot log per request.
 *
 * The server pair and the client CA bundle with its CRLs are watched
 * (WatchedMaterial): new material is checked before use (PEM, key matching
 * the certificate, CRLs signed by their CA) and reaches new connections
 * through `setSecureContext`; a refused file leaves the old material in
 * force. Connections made under an older CA bundle or CRL are verified again
 * with the current verifier, so that a revocation reaches keep-alive
 * connections too.
 */
export async function createTlsServer(handler: RequestListener | undefined, options: TlsServerOptions): Promise<TlsServer> {
  const { clientCaFile, crlFile } = options;
  if (crlFile !== undefined && clientCaFile === undefined) throw new TlsFileError(crlFile, 'a CRL file needs a client CA bundle');
  const oinPattern = options.oinPattern ?? DEFAULT_OIN_PATTERN;
  const clock = options.now ?? Date.now;
  // Declared before either is opened: a change seen by the first poll may apply before the other exists.
  let server: Server | undefined;
  let client: WatchedMaterial<CertificateVerifier> | undefined;
  let generation = 0;
  let handshakeFailures = 0;
  const generations = new WeakMap<TLSSocket, number>();
  const verdicts = new SocketVerdicts<number>();

  const contextOptions = (pair: ServerPair, verifier: CertificateVerifier | undefined) => ({
    key: pair.keyPem,
    cert: pair.certPem,
    minVersion: 'TLSv1.2' as const,
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    ...(verifier ? { ca: [...verifier.caPems] } : {}),
    // One string per CRL: given one string, Node may read only its first CRL.
    ...(verifier && verifier.crlPems.length > 0 ? { crl: [...verifier.crlPems] } : {}),
  });
  const watch = { pollMs: options.pollMs ?? 500, onError: (error: Error) => {
    options.logger?.warn({ err: error.message }, 'tls material refused, the last good one stays');
    options.onError?.(error);
  } };

  const pair = await WatchedMaterial.open<ServerPair>({
    ...watch,
    files: [options.certFile, options.keyFile],
    load: async () => loadServerPair(await readPemFile(options.certFile), options.certFile, await readPemFile(options.keyFile), options.keyFile),
    apply: (next) => {
      server?.setSecureContext(contextOptions(next, client?.current));
      options.logger?.info({ certificateNotAfter: new Date(next.notAfterMs).toISOString() }, 'tls server certificate reloaded');
    },
  });
  client = clientCaFile === undefined ? undefined : await WatchedMaterial.open<CertificateVerifier>({
    ...watch,
    files: [clientCaFile, ...(crlFile !== undefined ? [crlFile] : [])],
    load: () => loadClientCas({ clientCaFile, ...(crlFile !== undefined ? { crlFile } : {}), oinPattern }),
    apply: (next) => {
      server?.setSecureContext(contextOptions(pair.current, next));
      generation += 1;
      options.logger?.info({ clientCas: next.clientCas, crls: next.crlPems.length }, 'tls client CAs reloaded');
    },
  });

  const serverOptions: ServerOptions = {
    ...options.httpOptions,
    ...contextOptions(pair.current, client?.current),
    requestCert: client !== undefined,
    rejectUnauthorized: false,
    handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
  };
  // Without a handler the caller adds its own request listener (server.ts hardens it).
  server = handler ? createServer(serverOptions, handler) : createServer(serverOptions);
  // A resumed session carries the verdict of the handshake that made it, perhaps under older CAs or
  // CRLs (new contexts get new ticket keys today, but that is Node's detail): such sockets are verified again.
  server.on('secureConnection', (socket: TLSSocket) => generations.set(socket, socket.isSessionReused() ? -1 : generation));
  server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
    handshakeFailures += 1;
    options.onHandshakeError?.(error);
    socket.destroy();
  });

  /**
   * The handshake's verdict at first; later, or on a connection made under
   * older CAs or CRLs, or one that resumed a session, the current verifier's,
   * so that a keep-alive connection never outlives a revocation or an expiry
   * by more than SOCKET_VERDICT_TTL_MS.
   */
  function facts(socket: TLSSocket): CertificateFacts {
    const verifier = client?.current;
    if (!verifier) return NO_CERTIFICATE;
    const now = clock();
    const cached = verdicts.fresh(socket, generation, now);
    if (cached !== undefined) return cached;
    const peer = socket.getPeerX509Certificate();
    // The handshake's verdict is judged only once, and only when made under the material now in use.
    const result =
      peer !== undefined && (verdicts.judged(socket) || generations.get(socket) !== generation)
        ? factsOfVerdict(verifier.verifyChain(peer, peerChain(socket), now))
        : socketCertificateFacts(socket, oinPattern, now, verifier);
    return verdicts.keep(socket, generation, now, result);
  }

  return {
    server,
    get verifier() {
      return client?.current;
    },
    status() {
      const verifier = client?.current;
      const errors = [pair.lastError, client?.lastError].filter((error): error is string => typeof error === 'string');
      return {
        certificateNotAfter: new Date(pair.current.notAfterMs).toISOString(),
        clientCas: verifier ? verifier.clientCas : null,
        crlNextUpdate: verifier?.crlNextUpdateMs !== undefined ? new Date(verifier.crlNextUpdateMs).toISOString() : null,
        lastError: errors.length > 0 ? errors.join('; ') : null,
        handshakeFailures,
      };
    },
    facts,
    async reload() {
      const results = await Promise.all([pair.reload(), client?.reload() ?? true]);
      return results.every(Boolean);
    },
    close() {
      pair.close();
      client?.close();
    },
  };
}

/**
 * The client certificate of a TLS connection as its handshake judged it
 * (`socket.authorized`, against the CA bundle and CRLs of that moment).
 * With `verifier`, a refused certificate's reason comes from it when it
 * refuses too: OpenSSL goes on checking after the first failure and reports
 * the last one (a self-signed certificate comes out as "no CRL"), which
 * would log a different reason than the same certificate from a header.
 */
function socketCertificateFacts(socket: TLSSocket, oinPattern: RegExp, nowMs: number, verifier?: CertificateVerifier): CertificateFacts {
  const peer = socket.getPeerX509Certificate();
  if (!peer) return NO_CERTIFICATE;
  const sha256 = certificateSha256(peer);
  if (!socket.authorized) {
    const again = verifier?.verifyChain(peer, peerChain(socket), nowMs);
    return factsOfVerdict({ ok: false, reason: again && !again.ok ? again.reason : problemOfTlsError(socket.authorizationError), sha256 });
  }
  const oin = certificateOin(peer, oinPattern);
  return factsOfVerdict(oin.ok ? { ok: true, sha256, oin: oin.oin } : { ok: true, sha256, oinProblem: oin.problem });
}

/** The certificates the peer sent after its leaf, as OpenSSL linked them (at most 10). */
export function peerChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let link: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  for (let depth = 0; depth < 10 && link; depth += 1) {
    const issuer: DetailedPeerCertificate | undefined = link.issuerCertificate;
    if (!issuer || issuer === link || !issuer.raw) break;
    const certificate = certificateFromDer(issuer.raw);
    if (certificate) chain.push(certificate);
    link = issuer;
  }
  return chain;
}
