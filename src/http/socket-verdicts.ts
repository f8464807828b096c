/**
 * The verdict on a TLS connection's client certificate, kept per socket so
 * that a keep-alive connection is not verified on every request, and judged
 * again after a minute or as soon as the material it was judged under (CA
 * bundle, CRLs) is replaced: a connection never outlives a revocation or an
 * expiry by more than SOCKET_VERDICT_TTL_MS. One memo for both places that
 * judge sockets: our TLS listener and an embedding application's server.
 */
import type { TLSSocket } from 'node:tls';
import type { CertificateFacts } from '../tls/facts.ts';

/** How long the verdict on a connection's certificate is reused before it is judged again. */
export const SOCKET_VERDICT_TTL_MS = 60_000;

interface Entry<M> {
  readonly material: M;
  readonly atMs: number;
  readonly facts: CertificateFacts;
}

export class SocketVerdicts<M> {
  readonly #entries = new WeakMap<TLSSocket, Entry<M>>();

  /** The verdict still good for this socket under `material` at `nowMs`, if any. */
  fresh(socket: TLSSocket, material: M, nowMs: number): CertificateFacts | undefined {
    const entry = this.#entries.get(socket);
    return entry !== undefined && entry.material === material && nowMs - entry.atMs < SOCKET_VERDICT_TTL_MS ? entry.facts : undefined;
  }

  /** Whether this socket was ever judged here. */
  judged(socket: TLSSocket): boolean {
    return this.#entries.has(socket);
  }

  keep(socket: TLSSocket, material: M, nowMs: number, facts: CertificateFacts): CertificateFacts {
    this.#entries.set(socket, { material, atMs: nowMs, facts });
    return facts;
  }
}
