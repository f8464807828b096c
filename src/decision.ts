import { formatAddress, parsePeerAddress, type IpAddress } from './ip/address.ts';
import type { CidrSet } from './ip/cidr.ts';
import { resolveClientIp } from './ip/client-ip.ts';
import { foldKey, foldsTo } from './json/casefold.ts';
import { parseStrictJson, StrictJsonError } from './json/strict-json.ts';
import type { Snapshot, Tenant } from './model/snapshot.ts';
import { NO_CERTIFICATE, type CertificateFacts } from './tls/facts.ts';
import type { VerifiedTokenCache } from './token/cache.ts';
import type { KeySet } from './token/key.ts';
import { isRevoked } from './token/revocation.ts';
import { extractBearer, TOKEN_FAILURES, verifyTenantToken, type TokenFailure, type TokenPolicy } from './token/verify.ts';

/** What the HTTP layer knows before it reads the body; nothing here is trusted yet. */
export interface HeaderFacts {
  /** The TCP peer address as the socket reports it. */
  readonly peer: string | undefined;
  /**
   * The peer already parsed (null: unparseable), when the HTTP layer keeps
   * it per connection; otherwise `peer` is parsed here.
   */
  readonly peerAddress?: IpAddress | null;
  /** `peerAddress` formatted, kept per connection with it: the client IP's text when no proxy hop is believed. */
  readonly peerText?: string;
  /** X-Forwarded-For as Node joins it, or undefined. */
  readonly forwardedFor: string | undefined;
  /**
   * A header that must occur at most once but came on several lines.
   * Node keeps only the first Authorization or Content-Type line, while a
   * server behind us may read the last: such a request is refused.
   */
  readonly repeatedHeader?: 'authorization' | 'content-type' | undefined;
  /**
   * The client certificate as the HTTP layer verified it (our TLS listener,
   * or a trusted proxy's header); absent means none was presented.
   */
  readonly certificate?: CertificateFacts;
}

/** What the HTTP layer observed about one request, body included. */
export interface RequestFacts extends HeaderFacts {
  /** Every value of the OIN header, one per header line. */
  readonly oinHeader: readonly string[] | undefined;
  /** The request body bytes, already limited and of a JSON media type; undefined when there is none. */
  readonly body: Buffer | undefined;
  /** The Authorization header. */
  readonly authorization: string | undefined;
}

/** The settings a decision depends on, fixed at start-up. */
export interface DecisionPolicy {
  readonly trustedProxies: CidrSet;
  readonly oinField: readonly string[];
  /** `oinField` segments in folded form (see json/casefold.ts); built once, by decisionPolicy, never per request. */
  readonly oinFieldFolded: readonly string[];
  readonly oinPattern: RegExp;
  readonly tenantClaim: string;
  readonly maxBodyDepth: number;
  readonly token: TokenPolicy;
}

/**
 * Supplies a tenant's keys at decision time: its static keys, plus those of
 * its JWKS when it has one. `undefined` means the tenant's keys cannot be
 * known yet (a JWKS never fetched), which is not the caller's fault: 503.
 */
export type KeyLookup = (tenant: Tenant) => KeySet | undefined;

export const staticKeys: KeyLookup = (tenant) => tenant.keys;

/** Every precise reason a request can be refused; logged and counted, never told to the caller. */
export const REFUSAL_REASONS = [
  'not_ready',
  'peer_unparseable',
  'forwarded_for_malformed',
  'ip_no_tenant',
  'authorization_repeated',
  'content_type_repeated',
  'body_invalid_json',
  'body_too_deep',
  'body_duplicate_key',
  'oin_key_folded',
  'oin_missing',
  'oin_not_string',
  'oin_pattern',
  'oin_header_repeated',
  'oin_conflict',
  'tenant_unknown',
  'tenant_disabled',
  'ip_not_whitelisted',
  'certificate_invalid',
  'certificate_no_oin',
  'certificate_mismatch',
  'certificate_missing',
  'keys_unavailable',
  ...TOKEN_FAILURES,
  'token_revoked',
  'claim_mismatch',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export type RefusalStatus = 400 | 401 | 403 | 503;

export type Decision =
  | {
      readonly allowed: true;
      readonly oin: string;
      readonly clientIp: string;
      /** The kid of the key that verified the token; null for a certificate-only tenant. */
      readonly kid: string | null;
      readonly tenant: Tenant;
      /** The verified token's claims; null for a certificate-only tenant. */
      readonly claims: Readonly<Record<string, unknown>> | null;
      /** Hex SHA-256 of the verified client certificate bound to the OIN, when one came. */
      readonly certificateSha256?: string;
      /** The parsed JSON body, or undefined when the request had none. */
      readonly body: unknown;
    }
  | Refused;

export interface Refused {
  readonly allowed: false;
  readonly status: RefusalStatus;
  readonly reason: RefusalReason;
  readonly clientIp: string | undefined;
  readonly oin: string | undefined;
  /** Set when the token named a kid this tenant does not have: a JWKS may need a refetch. */
  readonly tenant?: Tenant;
  /** The kid the refused token's header named, for the log (cut to 128 characters). */
  readonly kid?: string;
  /** For the log, where the value is the reason: the OIN header and the body's OIN (cut to 128 characters). */
  readonly oinHeader?: string;
  readonly oinBody?: string;
  /** For the log: the malformed X-Forwarded-For entry (cut to 128 characters). */
  readonly forwardedFor?: string;
  /** For the log: the jti of a revoked token (cut to 128 characters); never the token. */
  readonly jti?: string;
}

/** The client as the pre-body phase resolved it: the body may now be read. */
export interface ClientResolved {
  readonly allowed: 'pending';
  readonly ip: IpAddress;
  readonly clientIp: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function refuse(
  status: RefusalStatus,
  reason: RefusalReason,
  clientIp?: string,
  oin?: string,
  tenant?: Tenant,
): Refused {
  return { allowed: false, status, reason, clientIp, oin, ...(tenant ? { tenant } : {}) };
}

const NOT_READY = refuse(503, 'not_ready');

/** Log values are cut to this many characters: enough to recognise, too short to carry a payload. */
export const LOGGED_VALUE_CHARS = 128;

function logged(value: string): string {
  return value.length > LOGGED_VALUE_CHARS ? value.slice(0, LOGGED_VALUE_CHARS) : value;
}

/** The folded form of each OIN field segment, for the collision check in readOin. */
export function foldedPath(path: readonly string[]): string[] {
  return path.map(foldKey);
}

/**
 * Follows the OIN field's path, refusing when an object on the way holds
 * another key that folds to the path's key there (`Oin`, `OIN`, `oın`, the
 * Kelvin sign...): a case-insensitive upstream could read that one instead.
 */
function oinAtPath(document: unknown, path: readonly string[], folded: readonly string[]): { found: boolean; value?: unknown; folded?: true } {
  let current = document;
  for (let i = 0; i < path.length; i++) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return { found: false };
    const segment = path[i] as string;
    const want = folded[i] as string;
    const object = current as Record<string, unknown>;
    for (const key in object) {
      if (key !== segment && foldsTo(key, want)) return { found: false, folded: true };
    }
    if (!Object.hasOwn(object, segment)) return { found: false };
    current = object[segment];
  }
  return { found: true, value: current };
}

/** The kid a refused token's header names, for the log only; undefined when there is none. */
function namedKid(token: string): string | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0) return undefined;
  try {
    const header = parseStrictJson(utf8.decode(Buffer.from(token.slice(0, dot), 'base64url')), { maxDepth: 4 });
    const kid = (header as Record<string, unknown> | null)?.['kid'];
    return typeof kid === 'string' && Object.hasOwn(header as object, 'kid') ? logged(kid) : undefined;
  } catch {
    return undefined;
  }
}

type OinResult =
  | { ok: true; oin: string; document: unknown }
  | { ok: false; reason: RefusalReason; oinHeader?: string; oinBody?: string };

/** Reads the OIN from body and header; both present means both must agree. */
function readOin(facts: RequestFacts, policy: DecisionPolicy): OinResult {
  let fromBody: unknown;
  let bodyHasOin = false;
  let document: unknown;
  if (facts.body !== undefined && facts.body.length > 0) {
    try {
      document = parseStrictJson(utf8.decode(facts.body), { maxDepth: policy.maxBodyDepth });
    } catch (error) {
      if (error instanceof StrictJsonError) {
        if (error.code === 'ERR_JSON_DEPTH') return { ok: false, reason: 'body_too_deep' };
        if (error.code === 'ERR_JSON_DUPLICATE_KEY') return { ok: false, reason: 'body_duplicate_key' };
      }
      // Invalid UTF-8 (TypeError from the fatal decoder) lands here too.
      return { ok: false, reason: 'body_invalid_json' };
    }
    const found = oinAtPath(document, policy.oinField, policy.oinFieldFolded);
    if (found.folded) return { ok: false, reason: 'oin_key_folded' };
    if (found.found) {
      bodyHasOin = true;
      fromBody = found.value;
    }
  }

  const headers = facts.oinHeader;
  if (headers !== undefined && headers.length > 1) return { ok: false, reason: 'oin_header_repeated', oinHeader: logged(`${headers[0]}, ${headers[1]}`) };
  const fromHeader = headers?.[0];

  if (!bodyHasOin && fromHeader === undefined) return { ok: false, reason: 'oin_missing' };
  if (bodyHasOin && typeof fromBody !== 'string') return { ok: false, reason: 'oin_not_string' };
  if (bodyHasOin && fromHeader !== undefined && fromBody !== fromHeader) {
    return { ok: false, reason: 'oin_conflict', oinHeader: logged(fromHeader), oinBody: logged(fromBody as string) };
  }
  const oin = (bodyHasOin ? fromBody : fromHeader) as string;
  if (!policy.oinPattern.test(oin)) {
    return bodyHasOin ? { ok: false, reason: 'oin_pattern', oinBody: logged(oin) } : { ok: false, reason: 'oin_pattern', oinHeader: logged(oin) };
  }
  return { ok: true, oin, document };
}

/**
 * The checks that need no body: a whitelist is loaded, the client IP
 * resolves, some tenant's ranges hold it, and no single-valued header is
 * repeated. Taken before the body is read, so that traffic from outside
 * every whitelist costs next to nothing.
 */
export function decideBeforeBody(facts: HeaderFacts, snapshot: Snapshot | undefined, policy: DecisionPolicy): ClientResolved | Refused {
  let ip: IpAddress;
  const peer = facts.peerAddress !== undefined ? facts.peerAddress : facts.peer === undefined ? null : (parsePeerAddress(facts.peer) ?? null);
  // Without a whitelist the answer is not_ready whatever else is wrong; the client IP is resolved for the log only.
  if (peer === null) return snapshot === undefined ? NOT_READY : refuse(403, 'peer_unparseable');
  if (facts.forwardedFor === undefined || !policy.trustedProxies.contains(peer)) {
    ip = peer;
  } else {
    const client = resolveClientIp(facts.peer, facts.forwardedFor, policy.trustedProxies);
    if (!client.ok) {
      if (snapshot === undefined) return NOT_READY;
      if (client.reason !== 'forwarded_for_malformed') return refuse(403, client.reason);
      // The offending entry; the header's start when no single entry is the reason (too many hops).
      return { ...refuse(403, client.reason), forwardedFor: logged(client.value ?? facts.forwardedFor) };
    }
    ip = client.ip;
  }
  const clientIp = ip === peer && facts.peerText !== undefined ? facts.peerText : formatAddress(ip);
  if (snapshot === undefined) return refuse(503, 'not_ready', clientIp);
  if (!snapshot.covers(ip)) return refuse(403, 'ip_no_tenant', clientIp);
  if (facts.repeatedHeader === 'authorization') return refuse(400, 'authorization_repeated', clientIp);
  if (facts.repeatedHeader === 'content-type') return refuse(400, 'content_type_repeated', clientIp);
  // A presented certificate that does not verify refuses every request on
  // its connection, whatever the request says (contract §9): before the body.
  if (facts.certificate?.presented === true && !facts.certificate.verified) return refuse(403, 'certificate_invalid', clientIp);
  return { allowed: 'pending', ip, clientIp };
}

/**
 * The rest, in the contract's order: OIN, tenant, IP whitelist, token,
 * tenant claim. `client` is what decideBeforeBody resolved.
 */
export function decideWithBody(
  client: ClientResolved,
  facts: RequestFacts,
  snapshot: Snapshot,
  policy: DecisionPolicy,
  nowMs: number,
  keysOf: KeyLookup = staticKeys,
  tokenCache?: VerifiedTokenCache,
): Decision {
  const clientIp = client.clientIp;
  const oinResult = readOin(facts, policy);
  if (!oinResult.ok) {
    const refused = refuse(400, oinResult.reason, clientIp);
    if (oinResult.oinHeader === undefined && oinResult.oinBody === undefined) return refused;
    return { ...refused, oinHeader: oinResult.oinHeader, oinBody: oinResult.oinBody };
  }
  const oin = oinResult.oin;

  const tenant = snapshot.tenants.get(oin);
  if (tenant === undefined) return refuse(403, 'tenant_unknown', clientIp, oin);
  if (!tenant.enabled) return refuse(403, 'tenant_disabled', clientIp, oin);

  if (!tenant.cidrs.contains(client.ip)) return refuse(403, 'ip_not_whitelisted', clientIp, oin);

  // The certificate steps (contract §9): after the IP whitelist, before the token.
  const certificate = facts.certificate ?? NO_CERTIFICATE;
  const certificateRefusal = checkCertificate(certificate, tenant, oin);
  if (certificateRefusal !== undefined) return refuse(403, certificateRefusal, clientIp, oin);
  const certificateSha256 = certificate.verified ? certificate.sha256 : undefined;
  if (tenant.authentication === 'certificate') {
    return { allowed: true, oin, clientIp, kid: null, tenant, claims: null, body: oinResult.document, ...(certificateSha256 ? { certificateSha256 } : {}) };
  }

  const keys = keysOf(tenant);
  if (keys === undefined) return refuse(503, 'keys_unavailable', clientIp, oin);
  if (facts.authorization === undefined) return refuse(401, 'token_missing', clientIp, oin);
  const token = extractBearer(facts.authorization);
  if (token === undefined) return refuse(401, 'token_malformed', clientIp, oin);
  // A tenant's own issuer/audience replace the global ones for its tokens.
  const expect = tenant.issuer !== undefined || tenant.audience !== undefined ? tenant : undefined;
  const verified = verifyTenantToken(token, keys, policy.token, nowMs, tokenCache, expect);
  if (!verified.ok) {
    const reason: TokenFailure = verified.reason;
    const refused = refuse(401, reason, clientIp, oin, reason === 'token_unknown_kid' ? tenant : undefined);
    const kid = namedKid(token);
    return kid === undefined ? refused : { ...refused, kid };
  }

  // A revoked token: on every request, cached or not, against the tenant enforced now.
  if (isRevoked(tenant, verified.claims)) {
    const jti = verified.claims['jti'];
    const refused = { ...refuse(401, 'token_revoked', clientIp, oin), kid: verified.kid };
    return typeof jti === 'string' ? { ...refused, jti: logged(jti) } : refused;
  }

  // Strict identity: no numbers, arrays or case folding.
  if (verified.claims[policy.tenantClaim] !== oin) return { ...refuse(403, 'claim_mismatch', clientIp, oin), kid: verified.kid };

  const allowed: Decision = { allowed: true, oin, clientIp, kid: verified.kid, tenant, claims: verified.claims, body: oinResult.document };
  return certificateSha256 === undefined ? allowed : { ...allowed, certificateSha256 };
}

/**
 * The certificate's part of the decision: a presented certificate must
 * verify and name this OIN whatever the tenant's authentication; a tenant
 * that needs one must have it. Undefined: nothing to refuse.
 */
function checkCertificate(certificate: CertificateFacts, tenant: Tenant, oin: string): RefusalReason | undefined {
  if (certificate.presented) {
    if (!certificate.verified) return 'certificate_invalid';
    if (certificate.oin === undefined) return 'certificate_no_oin';
    if (certificate.oin !== oin) return 'certificate_mismatch';
    return undefined;
  }
  const needed = tenant.authentication === 'certificate' || tenant.authentication === 'certificate+token';
  return needed ? 'certificate_missing' : undefined;
}

/**
 * The whole decision, in the contract's order: the pre-body checks (client
 * IP, some tenant covers it, no repeated single-valued header), then OIN,
 * tenant, IP whitelist, token, tenant claim. No I/O and no clock of its own;
 * the optional token cache only spares repeated signature checks and never
 * changes an answer.
 */
export function decide(
  facts: RequestFacts,
  snapshot: Snapshot | undefined,
  policy: DecisionPolicy,
  nowMs: number,
  keysOf: KeyLookup = staticKeys,
  tokenCache?: VerifiedTokenCache,
): Decision {
  const client = decideBeforeBody(facts, snapshot, policy);
  if (client.allowed === false) return client;
  return decideWithBody(client, facts, snapshot as Snapshot, policy, nowMs, keysOf, tokenCache);
}
