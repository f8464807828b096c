/**
 * Which address a request comes from: the TCP peer, or, only when the peer
 * is a trusted proxy, the nearest untrusted hop in X-Forwarded-For.
 * Pure: takes strings, returns a value.
 */
import { parseAddressAt, parsePeerAddress, type IpAddress } from './address.ts';
import type { CidrSet } from './cidr.ts';

export type ClientIpResult =
  | { ok: true; ip: IpAddress }
  | { ok: false; reason: 'peer_unparseable' | 'forwarded_for_malformed' };

/** More entries than this in X-Forwarded-For is refused outright. */
export const MAX_FORWARDED_FOR_ENTRIES = 64;

const PEER_UNPARSEABLE: ClientIpResult = Object.freeze({
  ok: false,
  reason: 'peer_unparseable',
});
const FORWARDED_FOR_MALFORMED: ClientIpResult = Object.freeze({
  ok: false,
  reason: 'forwarded_for_malformed',
});

const CH_SPACE = 32;
const CH_TAB = 9;
const CH_COMMA = 44;

function isOws(c: number): boolean {
  return c === CH_SPACE || c === CH_TAB;
}

/**
 * Resolves the client address.
 *
 * - `peer` (the socket's remoteAddress) undefined or unparseable →
 *   `peer_unparseable`.
 * - Peer not in `trusted` → the peer; X-Forwarded-For is ignored entirely.
 * - Peer trusted, header absent or only spaces/tabs → the peer.
 * - Peer trusted, header present → every comma-separated entry (spaces/tabs
 *   trimmed) must be a canonical address, and there may be at most 64; else
 *   `forwarded_for_malformed` (never a fallback to the peer). Walking from
 *   the right, entries inside `trusted` are skipped; the first untrusted one
 *   is the client, or the leftmost entry if all are trusted.
 *
 * IPv4-mapped IPv6 (peer or entry) is treated as its IPv4 address.
 */
export function resolveClientIp(
  peer: string | undefined,
  forwardedFor: string | undefined,
  trusted: CidrSet,
): ClientIpResult {
  if (typeof peer !== 'string') return PEER_UNPARSEABLE;
  const peerIp = parsePeerAddress(peer);
  if (peerIp === undefined) return PEER_UNPARSEABLE;
  if (!trusted.contains(peerIp) || typeof forwardedFor !== 'string') {
    return { ok: true, ip: peerIp };
  }

  const h = forwardedFor;
  let client: IpAddress | undefined;
  let leftmost: IpAddress | undefined;
  let entries = 0;
  let end = h.length; // exclusive end of the current entry
  for (;;) {
    // Find the comma that starts this entry, scanning leftwards.
    let start = end;
    while (start > 0 && h.charCodeAt(start - 1) !== CH_COMMA) start--;
    const comma = start - 1; // -1 when this is the leftmost entry

    if (++entries > MAX_FORWARDED_FOR_ENTRIES) return FORWARDED_FOR_MALFORMED;

    let s = start;
    let e = end;
    while (s < e && isOws(h.charCodeAt(s))) s++;
    while (e > s && isOws(h.charCodeAt(e - 1))) e--;
    if (s === e) {
      // A header that is empty or only whitespace counts as absent.
      if (comma < 0 && entries === 1) return { ok: true, ip: peerIp };
      return FORWARDED_FOR_MALFORMED;
    }
    const ip = parseAddressAt(h, s, e);
    if (ip === undefined) return FORWARDED_FOR_MALFORMED;
    // Keep validating every entry even after the client is found.
    if (client === undefined && !trusted.contains(ip)) client = ip;
    leftmost = ip;

    if (comma < 0) break;
    end = comma;
  }
  return { ok: true, ip: client ?? leftmost };
}
