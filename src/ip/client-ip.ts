/**
 * Which address a request comes from: the TCP peer, or, only when the peer
 * is a trusted proxy, the nearest untrusted hop in X-Forwarded-For.
 * Pure: takes strings, returns a value.
 */
import { parseAddressAt, parsePeerAddress, type IpAddress } from './address.ts';
import type { CidrSet } from './cidr.ts';

export type ClientIpResult =
  | { ok: true; ip: IpAddress }
  | {
      ok: false;
      reason: 'peer_unparseable' | 'forwarded_for_malformed';
      /**
       * The refused text (the peer, or the forwarded entry with its spaces
       * trimmed), cut to {@link MAX_LOGGED_VALUE_LENGTH} characters, for the
       * log line only. Absent when no single value is the reason (no peer,
       * too many trusted hops).
       */
      value?: string;
    };

/**
 * More entries than this walked in X-Forwarded-For (trusted proxies plus the
 * client) is refused. Entries left of the client are not counted.
 */
export const MAX_FORWARDED_FOR_ENTRIES = 64;

/** A refused value is cut to this many characters for the log. */
export const MAX_LOGGED_VALUE_LENGTH = 128;

const NO_PEER: ClientIpResult = Object.freeze({ ok: false, reason: 'peer_unparseable' });
const TOO_MANY_HOPS: ClientIpResult = Object.freeze({ ok: false, reason: 'forwarded_for_malformed' });

const CH_SPACE = 32;
const CH_TAB = 9;
const CH_COMMA = 44;

function isOws(c: number): boolean {
  return c === CH_SPACE || c === CH_TAB;
}

function malformed(text: string, start: number, end: number): ClientIpResult {
  return {
    ok: false,
    reason: 'forwarded_for_malformed',
    value: text.slice(start, Math.min(end, start + MAX_LOGGED_VALUE_LENGTH)),
  };
}

/**
 * Resolves the client address.
 *
 * - `peer` (the socket's remoteAddress) undefined or unparseable →
 *   `peer_unparseable`.
 * - Peer not in `trusted` → the peer; X-Forwarded-For is ignored entirely.
 * - Peer trusted, header absent or only spaces/tabs → the peer.
 * - Peer trusted, header present → walk the comma-separated entries (spaces
 *   and tabs trimmed) from the right: entries inside `trusted` are skipped,
 *   the first untrusted one is the client (or the leftmost entry if all are
 *   trusted). Every entry walked must be a canonical address, and at most 64
 *   may be walked; else `forwarded_for_malformed` (never a fallback to the
 *   peer). Entries left of the client are never read: what a caller's own
 *   proxy wrote there neither helps nor harms it, and costs no parsing.
 *
 * IPv4-mapped IPv6 (peer or entry) is treated as its IPv4 address.
 */
export function resolveClientIp(
  peer: string | undefined,
  forwardedFor: string | undefined,
  trusted: CidrSet,
): ClientIpResult {
  if (typeof peer !== 'string') return NO_PEER;
  const peerIp = parsePeerAddress(peer);
  if (peerIp === undefined) {
    return { ok: false, reason: 'peer_unparseable', value: peer.slice(0, MAX_LOGGED_VALUE_LENGTH) };
  }
  if (!trusted.contains(peerIp) || typeof forwardedFor !== 'string') {
    return { ok: true, ip: peerIp };
  }

  const h = forwardedFor;
  let walked = 0;
  let end = h.length; // exclusive end of the current entry
  for (;;) {
    // Find the comma that starts this entry, scanning leftwards.
    let start = end;
    while (start > 0 && h.charCodeAt(start - 1) !== CH_COMMA) start--;
    const comma = start - 1; // -1 when this is the leftmost entry

    if (++walked > MAX_FORWARDED_FOR_ENTRIES) return TOO_MANY_HOPS;

    let s = start;
    let e = end;
    while (s < e && isOws(h.charCodeAt(s))) s++;
    while (e > s && isOws(h.charCodeAt(e - 1))) e--;
    if (s === e) {
      // A header that is empty or only whitespace counts as absent.
      if (comma < 0 && walked === 1) return { ok: true, ip: peerIp };
      return malformed(h, s, e);
    }
    const ip = parseAddressAt(h, s, e);
    if (ip === undefined) return malformed(h, s, e);
    if (comma < 0 || !trusted.contains(ip)) return { ok: true, ip };
    end = comma;
  }
}
