/**
 * Names a validation issue by the database row it came from. The model
 * validates the document the PostgreSQL source assembled and places issues
 * by position (`tenants[2].keys[0].secret`); a position in a list the
 * operator never sees is no help, so the source turns it back into the row:
 * `tenant 00000001000000000001 key "k1" secret`.
 */

const ISSUE_PATH = /^tenants\[(\d+)\](?:\.(cidrs|keys)(?:\[(\d+)\])?)?(?:\.([A-Za-z]+))?$/;
const RATE_LIMIT_PATH = /^tenants\[(\d+)\]\.rateLimit(?:\.(perSecond|burst))?$/;
const REVOKED_PATH = /^revokedTokens\[(\d+)\](?:\.([A-Za-z]+))?$/;
const SHOWN_LENGTH = 64;

function quoted(text: string): string {
  return JSON.stringify(text.length > SHOWN_LENGTH ? `${text.slice(0, SHOWN_LENGTH)}…` : text);
}

/** An OIN is shown bare when it looks like one, else quoted (it may be any text in a bad row). */
function shownOin(oin: unknown): string {
  if (typeof oin !== 'string') return '(no OIN)';
  return /^[0-9A-Za-z._-]{1,64}$/.test(oin) ? oin : quoted(oin);
}

/** A document field as the column that holds it: `publicKey` is `public_key`. */
function column(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function at(list: unknown, index: number): unknown {
  return Array.isArray(list) ? list[index] : undefined;
}

function field(record: unknown, name: string): unknown {
  return typeof record === 'object' && record !== null ? (record as Record<string, unknown>)[name] : undefined;
}

/**
 * `path` rewritten by row, using the order of `document` (the one that was
 * validated). A path it does not recognise, or one whose row is not in the
 * document, comes back unchanged.
 */
export function describeRowPath(document: unknown, path: string): string {
  const limit = RATE_LIMIT_PATH.exec(path);
  if (limit) {
    const tenant = at(field(document, 'tenants'), Number(limit[1]));
    if (tenant === undefined) return path;
    // The two columns hold the document's rateLimit.perSecond and .burst.
    return `tenant ${shownOin(field(tenant, 'oin'))} rate_limit${limit[2] === undefined ? '' : `_${column(limit[2])}`}`;
  }
  const revoked = REVOKED_PATH.exec(path);
  if (revoked) {
    const row = at(field(document, 'revokedTokens'), Number(revoked[1]));
    if (row === undefined) return path;
    const jti = field(row, 'jti');
    const out = `revoked token ${typeof jti === 'string' ? quoted(jti) : '(no jti)'} of tenant ${shownOin(field(row, 'oin'))}`;
    return revoked[2] === undefined ? out : `${out} ${column(revoked[2])}`;
  }
  const match = ISSUE_PATH.exec(path);
  if (!match) return path;
  const [, tenantIndex, list, itemIndex, rest] = match;
  const tenant = at(field(document, 'tenants'), Number(tenantIndex));
  if (tenant === undefined) return path;
  let out = `tenant ${shownOin(field(tenant, 'oin'))}`;
  if (list !== undefined && itemIndex !== undefined) {
    const item = at(field(tenant, list), Number(itemIndex));
    if (item === undefined) return path;
    if (list === 'cidrs') {
      out += ` cidr ${typeof item === 'string' ? quoted(item) : '(not text)'}`;
    } else {
      const kid = field(item, 'kid');
      out += ` key ${typeof kid === 'string' ? quoted(kid) : '(no kid)'}`;
    }
  } else if (list !== undefined) {
    out += ` ${list}`;
  }
  if (rest !== undefined) out += ` ${column(rest)}`;
  return out;
}
