import { formatAddress } from './ip/address.ts';
import type { CidrSet } from './ip/cidr.ts';
import { resolveClientIp } from './ip/client-ip.ts';
import { getPath, parseStrictJson, StrictJsonError } from './json/strict-json.ts';
import type { Snapshot, Tenant } from './model/snapshot.ts';
import type { VerifiedTokenCache } from './token/cache.ts';
import type { KeySet } from './token/key.ts';
import { extractBearer, TOKEN_FAILURES, verifyTenantToken, type TokenFailure, type TokenPolicy } from './token/verify.ts';

/** What the HTTP layer observed about one request; nothing here is trusted yet. */
export interface RequestFacts {
  /** The TCP peer address as the socket reports it. */
  readonly peer: string | undefined;
  /** X-Forwarded-For as Node joins it, or undefined. */
  readonly forwardedFor: string | undefined;
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
  'body_invalid_json',
  'body_too_deep',
  'body_duplicate_key',
  'oin_missing',
  'oin_not_string',
  'oin_pattern',
  'oin_header_repeated',
  'oin_conflict',
  'tenant_unknown',
  'tenant_disabled',
  'ip_not_whitelisted',
  'keys_unavailable',
  ...TOKEN_FAILURES,
  'claim_mismatch',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export type RefusalStatus = 400 | 401 | 403 | 503;

export type Decision =
  | {
      readonly allowed: true;
      readonly oin: string;
      readonly clientIp: string;
      readonly kid: string;
      readonly tenant: Tenant;
    }
  | {
      readonly allowed: false;
      readonly status: RefusalStatus;
      readonly reason: RefusalReason;
      readonly clientIp: string | undefined;
      readonly oin: string | undefined;
      /** Set when the token named a kid this tenant does not have: a JWKS may need a refetch. */
      readonly tenant?: Tenant;
    };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function refuse(
  status: RefusalStatus,
  reason: RefusalReason,
  clientIp?: string,
  oin?: string,
  tenant?: Tenant,
): Decision {
  return { allowed: false, status, reason, clientIp, oin, ...(tenant ? { tenant } : {}) };
}

type OinResult = { ok: true; oin: string } | { ok: false; reason: RefusalReason };

/** Reads the OIN from body and header; both present means both must agree. */
function readOin(facts: RequestFacts, policy: DecisionPolicy): OinResult {
  let fromBody: unknown;
  let bodyHasOin = false;
  if (facts.body !== undefined && facts.body.length > 0) {
    let document: unknown;
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
    const found = getPath(document, policy.oinField);
    if (found.found) {
      bodyHasOin = true;
      fromBody = found.value;
    }
  }

  const headers = facts.oinHeader;
  if (headers !== undefined && headers.length > 1) return { ok: false, reason: 'oin_header_repeated' };
  const fromHeader = headers?.[0];

  if (!bodyHasOin && fromHeader === undefined) return { ok: false, reason: 'oin_missing' };
  if (bodyHasOin && typeof fromBody !== 'string') return { ok: false, reason: 'oin_not_string' };
  if (bodyHasOin && fromHeader !== undefined && fromBody !== fromHeader) return { ok: false, reason: 'oin_conflict' };
  const oin = (bodyHasOin ? fromBody : fromHeader) as string;
  if (!policy.oinPattern.test(oin)) return { ok: false, reason: 'oin_pattern' };
  return { ok: true, oin };
}

/**
 * The whole decision, in the contract's order: client IP, OIN, tenant,
 * IP whitelist, token, tenant claim. No I/O and no clock of its own; the
 * optional token cache only spares repeated signature checks and never
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
  if (snapshot === undefined) return refuse(503, 'not_ready');

  const client = resolveClientIp(facts.peer, facts.forwardedFor, policy.trustedProxies);
  if (!client.ok) return refuse(403, client.reason);
  const clientIp = formatAddress(client.ip);

  const oinResult = readOin(facts, policy);
  if (!oinResult.ok) return refuse(400, oinResult.reason, clientIp);
  const oin = oinResult.oin;

  const tenant = snapshot.tenants.get(oin);
  if (tenant === undefined) return refuse(403, 'tenant_unknown', clientIp, oin);
  if (!tenant.enabled) return refuse(403, 'tenant_disabled', clientIp, oin);

  if (!tenant.cidrs.contains(client.ip)) return refuse(403, 'ip_not_whitelisted', clientIp, oin);

  const keys = keysOf(tenant);
  if (keys === undefined) return refuse(503, 'keys_unavailable', clientIp, oin);
  if (facts.authorization === undefined) return refuse(401, 'token_missing', clientIp, oin);
  const token = extractBearer(facts.authorization);
  if (token === undefined) return refuse(401, 'token_malformed', clientIp, oin);
  const verified = verifyTenantToken(token, keys, policy.token, nowMs, tokenCache);
  if (!verified.ok) {
    const reason: TokenFailure = verified.reason;
    return refuse(401, reason, clientIp, oin, reason === 'token_unknown_kid' ? tenant : undefined);
  }

  // Strict identity: no numbers, arrays or case folding.
  if (verified.claims[policy.tenantClaim] !== oin) return refuse(403, 'claim_mismatch', clientIp, oin);

  return { allowed: true, oin, clientIp, kid: verified.kid, tenant };
}
