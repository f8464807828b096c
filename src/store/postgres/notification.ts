/**
 * The payload oingate's triggers (sql/006) send on oingate_config:
 * `oingate:1:` and a JSON list of the OINs a transaction touched, or
 * `oingate:1:*` to re-read everything. Anyone who may NOTIFY can send
 * anything on the channel, so the payload is parsed strictly, and whatever
 * is not exactly that form asks for a full re-read: a forged payload can at
 * most cause work a resync does anyway, never hide a change.
 */

const NOTIFY_PREFIX = 'oingate:1:';
/** Re-read everything. */
const FULL_RELOAD_MARKER = `${NOTIFY_PREFIX}*`;
/** A payload is at most 8000 bytes; the triggers switch to the marker past 300 OINs. */
const MAX_OINS = 1000;
/** No OIN column value is this long; a longer one is not ours. */
const MAX_OIN_LENGTH = 256;

/** The OINs a payload names, or undefined for a full re-read (the marker, an empty payload, or one not ours). */
export function parseNotification(payload: string | undefined): readonly string[] | undefined {
  if (typeof payload !== 'string' || !payload.startsWith(NOTIFY_PREFIX) || payload === FULL_RELOAD_MARKER) return undefined;
  let list: unknown;
  try {
    list = JSON.parse(payload.slice(NOTIFY_PREFIX.length));
  } catch {
    return undefined;
  }
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_OINS) return undefined;
  for (const oin of list) {
    if (typeof oin !== 'string' || oin.length === 0 || oin.length > MAX_OIN_LENGTH) return undefined;
  }
  return list as string[];
}
