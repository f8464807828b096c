import { readFile, realpath, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { RequestListener } from 'node:http';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import type { Logger } from '../observe/logger.ts';
import { TlsFileError } from '../tls/errors.ts';
import { factsOfVerdict, NO_CERTIFICATE, type CertificateFacts } from '../tls/facts.ts';
import { certificateOin } from '../tls/oin.ts';
import { loadServerPair, type ServerPair } from '../tls/pair.ts';
import { certificateFromDer, pemText } from '../tls/pem.ts';
import { certificateSha256, CertificateVerifier, problemOfTlsError } from '../tls/verify.ts';

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
  /** A refused reload (the old material stays). */
  readonly onError?: (error: Error) => void;
  /** A failed TLS handshake. */
  readonly onHandshakeError?: (error: Error) => void;
  readonly logger?: Logger;
}

export interface TlsStatus {
  /** ISO-8601 notAfter of the server certificate in use. */
  readonly certificateNotAfter: string;
  /** CA certificates client certificates may chain to; null when clients are not asked for one. */
  readonly clientCas: number | null;
  /** ISO-8601 earliest nextUpdate of the CRLs in use; null without CRLs. */
  readonly crlNextUpdate: string | null;
  /** The error of the last refused reload, null once every file loads again. */
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
const MIN_VERSION = 'TLSv1.2';

async function readText(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new TlsFileError(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return pemText(bytes, file);
}

/** Identity of what a path resolves to, so atomic renames and symlink swaps count as changes. */
async function identity(file: string | undefined): Promise<string> {
  if (file === undefined) return '';
  try {
    const real = await realpath(file);
    const info = await stat(real);
    return `${real}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? ''}`;
  }
}

/**
 * The public HTTPS listener with live TLS material. TLS 1.2 and later only.
 * With a client CA bundle every client is asked for a certificate, but the
 * handshake never fails for a bad one (`rejectUnauthorized: false`): the
 * request then reaches the gate, which refuses it with the usual 403 JSON
 * answer and logs why (`facts`), instead of a handshake error the client
 * cannot read and we cannot log per request.
 *
 * The files are polled (a stat per file per `pollMs`; the whole pair or the
 * CA bundle and CRL are re-read only when one of them changed). New material
 * is checked before use (PEM, key matching the certificate, CRLs signed by
 * their CA) and goes to new connections through `setSecureContext`; a
 * refused file leaves the old material in force. Connections made under
 * older client-CA material are verified again with the current verifier, so
 * that a revocation also reaches keep-alive connections.
 */
export async function createTlsServer(handler: RequestListener, options: TlsServerOptions): Promise<TlsServer> {
  if (options.crlFile !== undefined && options.clientCaFile === undefined) {
    throw new TlsFileError(options.crlFile, 'a CRL file needs a client CA bundle');
  }
  const oinPattern = options.oinPattern ?? DEFAULT_OIN_PATTERN;
  const loadPair = async (): Promise<ServerPair> =>
    loadServerPair(await readText(options.certFile), options.certFile, await readText(options.keyFile), options.keyFile);
  const loadVerifier = async (): Promise<CertificateVerifier | undefined> => {
    if (options.clientCaFile === undefined) return undefined;
    return new CertificateVerifier({
      caPem: await readText(options.clientCaFile),
      caSource: options.clientCaFile,
      ...(options.crlFile !== undefined ? { crlPem: await readText(options.crlFile), crlSource: options.crlFile } : {}),
      oinPattern,
    });
  };

  const pairFiles = [options.certFile, options.keyFile];
  const clientFiles = [options.clientCaFile, options.crlFile];
  const seen = { pair: await identities(pairFiles), client: await identities(clientFiles) };
  let pair = await loadPair();
  let verifier = await loadVerifier();
  let generation = 0;
  const errors: { pair: string | null; client: string | null } = { pair: null, client: null };
  const lastError = (): string | null => [errors.pair, errors.client].filter(Boolean).join('; ') || null;
  let running: Promise<boolean> = Promise.resolve(true);
  let handshakeFailures = 0;
  const generations = new WeakMap<TLSSocket, number>();
  const factsCache = new WeakMap<TLSSocket, { readonly generation: number; readonly facts: CertificateFacts }>();

  const contextOptions = () => ({
    key: pair.keyPem,
    cert: pair.certPem,
    minVersion: MIN_VERSION,
    ...(verifier ? { ca: [...verifier.caPems] } : {}),
    // One string per CRL: given one string, Node may read only its first CRL.
    ...(verifier && verifier.crlPems.length > 0 ? { crl: [...verifier.crlPems] } : {}),
  }) as const;

  const server = createServer({ ...contextOptions(), requestCert: verifier !== undefined, rejectUnauthorized: false }, handler);
  server.on('secureConnection', (socket: TLSSocket) => generations.set(socket, generation));
  server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
    handshakeFailures += 1;
    options.onHandshakeError?.(error);
    socket.destroy();
  });

  async function identities(files: ReadonlyArray<string | undefined>): Promise<string> {
    return (await Promise.all(files.map(identity))).join('|');
  }

  /** Re-reads the group whose files changed (or both); a refused group keeps its old material and records its error. */
  async function reloadNow(force: boolean): Promise<boolean> {
    const now = { pair: await identities(pairFiles), client: await identities(clientFiles) };
    const changedPair = force || now.pair !== seen.pair;
    const changedClient = force || now.client !== seen.client;
    // Remembered even when refused: a bad file is retried once it changes again, not on every poll.
    Object.assign(seen, now);
    const nextPair = changedPair ? await attempt('pair', loadPair, pair) : pair;
    const nextVerifier = changedClient ? await attempt('client', loadVerifier, verifier) : verifier;
    if (nextPair !== pair || nextVerifier !== verifier) {
      const before = { pair, verifier };
      pair = nextPair;
      verifier = nextVerifier;
      try {
        server.setSecureContext(contextOptions());
        if (nextVerifier !== before.verifier) generation += 1;
        options.logger?.info({ serverCertificate: nextPair !== before.pair, clientCas: nextVerifier !== before.verifier }, 'tls material reloaded');
      } catch (error) {
        // OpenSSL refused what our checks let through: keep what worked.
        pair = before.pair;
        verifier = before.verifier;
        errors[nextPair !== before.pair ? 'pair' : 'client'] = `TLS context refused: ${(error as Error).message}`;
        options.onError?.(error as Error);
      }
    }
    if ((changedPair && errors.pair) || (changedClient && errors.client)) {
      options.logger?.warn({ err: lastError() }, 'tls material refused, the last good one stays');
    }
    return lastError() === null;
  }

  /** Loads one group; when refused, records why and keeps `current`. */
  async function attempt<T>(group: 'pair' | 'client', load: () => Promise<T>, current: T): Promise<T> {
    try {
      const loaded = await load();
      errors[group] = null;
      return loaded;
    } catch (error) {
      errors[group] = (error as Error).message;
      options.onError?.(error as Error);
      return current;
    }
  }

  /** One reload at a time: a slow read must not interleave with the next poll. */
  function reload(force: boolean): Promise<boolean> {
    running = running.then(() => reloadNow(force), () => reloadNow(force));
    return running;
  }

  const poll = setInterval(() => void reload(false).catch(() => undefined), options.pollMs ?? 500);
  poll.unref();

  function facts(socket: TLSSocket): CertificateFacts {
    const current = verifier;
    if (!current) return NO_CERTIFICATE;
    const cached = factsCache.get(socket);
    if (cached && cached.generation === generation) return cached.facts;
    let result = socketCertificateFacts(socket, oinPattern, current);
    if (result.presented && generations.get(socket) !== generation) {
      // Verified under an older CA bundle or CRL: judge it again by the current ones.
      const peer = socket.getPeerX509Certificate() as X509Certificate;
      result = factsOfVerdict(current.verifyChain(peer, peerChain(socket), Date.now()));
    }
    factsCache.set(socket, { generation, facts: result });
    return result;
  }

  return {
    server,
    get verifier() {
      return verifier;
    },
    status: () => ({
      certificateNotAfter: new Date(pair.notAfterMs).toISOString(),
      clientCas: verifier ? verifier.clientCas : null,
      crlNextUpdate: verifier?.crlNextUpdateMs !== undefined ? new Date(verifier.crlNextUpdateMs).toISOString() : null,
      lastError: lastError(),
      handshakeFailures,
    }),
    facts,
    reload: () => reload(true),
    close: () => clearInterval(poll),
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
export function socketCertificateFacts(socket: TLSSocket, oinPattern: RegExp, verifier?: CertificateVerifier): CertificateFacts {
  const peer = socket.getPeerX509Certificate();
  if (!peer) return NO_CERTIFICATE;
  const sha256 = certificateSha256(peer);
  if (!socket.authorized) {
    const again = verifier?.verifyChain(peer, peerChain(socket), Date.now());
    return factsOfVerdict({ ok: false, reason: again && !again.ok ? again.reason : problemOfTlsError(socket.authorizationError), sha256 });
  }
  const oin = certificateOin(peer, oinPattern);
  return factsOfVerdict(oin.ok ? { ok: true, sha256, oin: oin.oin } : { ok: true, sha256, oinProblem: oin.problem });
}

/** The certificates the peer sent after its leaf, as OpenSSL linked them (at most 10). */
function peerChain(socket: TLSSocket): X509Certificate[] {
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
