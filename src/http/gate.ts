import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import {
  decide,
  decideBeforeBody,
  decideWithBody,
  staticKeys,
  type Decision,
  type DecisionPolicy,
  type HeaderFacts,
  type KeyLookup,
  type RefusalStatus,
  type RequestFacts,
  LOGGED_VALUE_CHARS,
} from '../decision.ts';
import { formatAddress, parsePeerAddress, type IpAddress } from '../ip/address.ts';
import type { CidrSet } from '../ip/cidr.ts';
import { resolveClientIp } from '../ip/client-ip.ts';
import type { RateLimiter, Verdict as RateLimitVerdict } from '../limit/limiter.ts';
import type { Snapshot, Tenant } from '../model/snapshot.ts';
import type { Logger } from '../observe/logger.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { VerifiedTokenCache } from '../token/cache.ts';
import { hasBody, readBody } from './body.ts';
import type { CertificateSource } from './client-cert.ts';
import { Refusal, type RefusalStatusCode } from './refusal.ts';

/** What the gate needs; the same for the service (both modes) and an embedding API. */
export interface GateOptions {
  readonly snapshot: () => Snapshot | undefined;
  readonly policy: DecisionPolicy;
  readonly oinHeader: string;
  readonly bodyLimit: number;
  /** The whole body must arrive within this (408 otherwise). */
  readonly bodyDeadlineMs: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly keys?: KeyLookup;
  /**
   * Asked when a token names a kid the tenant does not have; resolves true
   * when the tenant's keys may have changed (a JWKS refetch), so the decision
   * is taken once more.
   */
  readonly refreshKeys?: (tenant: Tenant) => Promise<boolean>;
  readonly now?: () => number;
  readonly tokenCache?: VerifiedTokenCache;
  /** Claim names passed on as x-authenticated-claim-<name> (OINGATE_FORWARD_CLAIMS). */
  readonly forwardClaims?: readonly string[];
  /** Counts tenants' rate limits (contract §11); without it no limit is enforced. */
  readonly rateLimiter?: RateLimiter;
  /** The request's client certificate (contract §9); unset: requests never carry one. */
  readonly certificate?: CertificateSource;
  /**
   * Forward-auth mode: log the method and path of the original request as a
   * trusted front proxy names them (X-Original-Method / X-Original-URI,
   * X-Forwarded-Method / X-Forwarded-Uri) instead of the decision request's.
   */
  readonly logOriginalRequest?: boolean;
}

export type AllowedDecision = Decision & { allowed: true };

/** One request's facts for its log line, filled in as the request goes. */
export interface RequestState {
  readonly requestId: string;
  decision?: AllowedDecision;
  body?: Buffer | undefined;
  clientIp?: string | undefined;
  oin?: string | undefined;
  kid?: string | undefined;
  outcome?: 'allowed' | 'refused';
  reason?: string;
  upstreamError?: string;
  /** The OIN header of a request refused before its body was read, or one that is the reason of a refusal, for the log. */
  oinHeader?: string;
  /** The body's OIN when it is the reason of a refusal (oin_conflict, oin_pattern), for the log. */
  oinBody?: string;
  /** The malformed X-Forwarded-For entry of a forwarded_for_malformed refusal, for the log. */
  forwardedFor?: string;
  /** The jti of a revoked token, for the log. */
  jti?: string;
  /**
   * Headers the forwarding step adds to the upstream request as flat
   * name/value pairs (x-authenticated-claim-*); every value is a safe
   * header value.
   */
  extraHeaders?: string[];
  /** Why a presented client certificate did not count (expired, revoked...), for the log. */
  certificateDetail?: string;
  /** The presented client certificate's SHA-256 and, when verified, its OIN, for the log. */
  certificateSha256?: string;
  certificateOin?: string;
  /** True when the request declared a body that was not read: the connection cannot be reused. */
  bodyUnread?: boolean;
  /** The rate limiter's answer, for a tenant with a limit: the RateLimit-* (and Retry-After) headers. */
  rateLimit?: RateLimitVerdict;
}

/**
 * A request's state with every field there from the start (undefined until
 * set): one object shape for every request, allowed or refused, instead of
 * one that grows a property at a time and differs by outcome.
 */
export function newRequestState(requestId: string): RequestState {
  // Every key required here: a field added to RequestState and left out fails to compile.
  const state = {
    requestId,
    decision: undefined,
    body: undefined,
    clientIp: undefined,
    oin: undefined,
    kid: undefined,
    outcome: undefined,
    reason: undefined,
    upstreamError: undefined,
    oinHeader: undefined,
    oinBody: undefined,
    forwardedFor: undefined,
    extraHeaders: undefined,
    certificateDetail: undefined,
    certificateSha256: undefined,
    certificateOin: undefined,
    bodyUnread: undefined,
    rateLimit: undefined,
    jti: undefined,
  } satisfies Record<keyof RequestState, unknown>;
  return state;
}

/** The gate's answer: the allowed decision, or the status and precise reason of a refusal. */
export type Verdict = AllowedDecision | { readonly allowed: false; readonly status: RefusalStatusCode; readonly reason: string };

/** A connection's peer: the parsed address (null: unparseable) and its canonical text ('' then). */
export interface ConnectionPeer {
  readonly address: IpAddress | null;
  readonly text: string;
}

const NO_PEER: ConnectionPeer = { address: null, text: '' };

/** Each socket's peer, parsed and formatted once per connection rather than once per request. */
const peers = new WeakMap<Socket, ConnectionPeer>();

export function connectionPeer(socket: Socket): ConnectionPeer {
  let peer = peers.get(socket);
  if (peer === undefined) {
    const text = socket.remoteAddress;
    // An address is known once the socket is connected; never cache its absence.
    if (text === undefined) return NO_PEER;
    const address = parsePeerAddress(text) ?? null;
    peer = { address, text: address === null ? '' : formatAddress(address) };
    peers.set(socket, peer);
  }
  return peer;
}

export function peerOf(socket: Socket): IpAddress | null {
  return connectionPeer(socket).address;
}

interface HeaderScan {
  oin: string[] | undefined;
  repeated: 'authorization' | 'content-type' | undefined;
}

/**
 * One pass over the raw header lines: every value of the OIN header, and
 * whether Authorization or Content-Type came twice (Node's parsed headers
 * keep only the first of those, hiding the second).
 */
function scanHeaders(raw: readonly string[], oinHeader: string): HeaderScan {
  let oin: string[] | undefined;
  let authorization = 0;
  let contentType = 0;
  const oinLength = oinHeader.length;
  for (let i = 0; i < raw.length; i += 2) {
    const field = raw[i] as string;
    const length = field.length;
    if (length === oinLength && field.toLowerCase() === oinHeader) (oin ??= []).push(raw[i + 1] as string);
    if (length === 13 && field.toLowerCase() === 'authorization') authorization++;
    else if (length === 12 && field.toLowerCase() === 'content-type') contentType++;
  }
  const repeated = authorization > 1 ? 'authorization' : contentType > 1 ? 'content-type' : undefined;
  return { oin, repeated };
}

/**
 * A request refused before its body was read: the OIN header is all that
 * names its tenant, so the log carries it (cut to 128 characters) as `oin`
 * and as `oinHeader`. Unverified, like every OIN of a refused request.
 */
function noteOinHeader(state: RequestState, values: readonly string[]): void {
  const value = (values[0] as string).slice(0, LOGGED_VALUE_CHARS);
  state.oinHeader = value;
  state.oin = value;
}

/**
 * For requests the listener refuses before the gate sees them (413 before
 * `100 Continue`, bad framing): the client IP as the gate would resolve it
 * and the OIN header (cut to 128 characters), for the log line only.
 */
export function preflightLogFields(trusted: CidrSet, oinHeader: string): (request: IncomingMessage) => { clientIp?: string; oin?: string } {
  return (request) => {
    const forwarded = request.headers['x-forwarded-for'];
    const client = resolveClientIp(request.socket.remoteAddress, typeof forwarded === 'string' ? forwarded : undefined, trusted);
    const oin = request.headers[oinHeader];
    return {
      ...(client.ok ? { clientIp: formatAddress(client.ip) } : {}),
      ...(typeof oin === 'string' ? { oin: oin.slice(0, LOGGED_VALUE_CHARS) } : {}),
    };
  };
}

// Header values we pass on: visible ASCII and inner spaces only, so that no
// parser trims, folds or splits them and no byte is read in another charset.
const SAFE_HEADER_VALUE = /^[\x21-\x7e](?:[\x20-\x7e]{0,1022}[\x21-\x7e])?$/;

/** The claim names with their header names, built once. */
function claimHeaderNames(claims: readonly string[]): Array<readonly [claim: string, header: string]> {
  return claims.map((claim) => [claim, `x-authenticated-claim-${claim.toLowerCase().replaceAll('_', '-')}`] as const);
}

/**
 * Reads the body, gathers the request's facts and asks the decision
 * function. Never throws for anything a client sends: the verdict says
 * allowed, or which status and reason refuse the request.
 */
export function gate(options: GateOptions): (request: IncomingMessage, state: RequestState) => Promise<Verdict> {
  const keys = options.keys ?? staticKeys;
  const now = options.now ?? Date.now;
  const bodyOptions = { limit: options.bodyLimit, deadlineMs: options.bodyDeadlineMs };
  const { metrics, policy, logger, rateLimiter } = options;
  const claimHeaders = claimHeaderNames(options.forwardClaims ?? []);
  // labels() hashes its arguments on every call: resolve each reason's series once.
  const refusedSeries = new Map<string, { inc(): void }>();

  function countRefusal(reason: string, tenant?: Tenant, kid?: string): void {
    if (metrics.tenantLabels) {
      metrics.decision('refused', reason, tenant?.oin, tenant !== undefined && kid !== undefined && keyOf(tenant, kid) ? kid : '').inc();
      return;
    }
    let series = refusedSeries.get(reason);
    if (series === undefined) {
      series = metrics.decision('refused', reason);
      refusedSeries.set(reason, series);
    }
    series.inc();
  }

  /** Whether the tenant has a key by this kid: only the whitelist's kids become metric labels. */
  function keyOf(tenant: Tenant, kid: string): boolean {
    return (keys(tenant) ?? tenant.keys).byKid.get(kid) !== undefined;
  }

  function refused(
    state: RequestState,
    status: RefusalStatus | RefusalStatusCode,
    reason: string,
    started: number,
    tenant?: Tenant,
  ): Verdict {
    metrics.decisionSeconds.observe((performance.now() - started) / 1000);
    state.outcome = 'refused';
    state.reason = reason;
    countRefusal(reason, tenant, state.kid);
    return { allowed: false, status, reason };
  }

  function forwardedClaims(decision: AllowedDecision, state: RequestState): string[] | undefined {
    let headers: string[] | undefined;
    const claims = decision.claims;
    if (claims === null) return headers;
    for (const [claim, header] of claimHeaders) {
      if (!Object.hasOwn(claims, claim)) continue;
      const value = claims[claim];
      const text = typeof value === 'string' ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;
      if (text === undefined || !SAFE_HEADER_VALUE.test(text)) {
        logger.debug({ requestId: state.requestId, claim, type: value === null ? 'null' : typeof value }, 'claim not forwarded: not a string or number that is a safe header value');
        continue;
      }
      (headers ??= []).push(header, text);
    }
    return headers;
  }

  return async function gateRequest(request, state) {
    const started = performance.now();
    // Absolute-form or asterisk targets have no place in front of an API.
    if (request.url?.charCodeAt(0) !== 0x2f) {
      state.bodyUnread = hasBody(request);
      return refused(state, 400, 'request_target', started);
    }
    const scan = scanHeaders(request.rawHeaders, options.oinHeader);
    const forwardedFor = request.headers['x-forwarded-for'];
    const connection = connectionPeer(request.socket);
    const peerAddress = connection.address;
    const headerFacts: HeaderFacts = {
      peer: request.socket.remoteAddress,
      peerAddress,
      peerText: connection.text,
      // Node joins repeated X-Forwarded-For lines into one string.
      forwardedFor: typeof forwardedFor === 'string' ? forwardedFor : undefined,
      repeatedHeader: scan.repeated,
      certificate: options.certificate?.(request, peerAddress),
    };
    const certificate = headerFacts.certificate;
    if (certificate?.presented) {
      if (certificate.detail !== undefined) state.certificateDetail = certificate.detail;
      if (certificate.sha256 !== undefined) state.certificateSha256 = certificate.sha256;
      if (certificate.oin !== undefined) state.certificateOin = certificate.oin;
    }
    const snapshot = options.snapshot();
    const client = decideBeforeBody(headerFacts, snapshot, policy);
    if (client.allowed === false) {
      state.clientIp = client.clientIp;
      if (scan.oin !== undefined) noteOinHeader(state, scan.oin);
      if (client.forwardedFor !== undefined) state.forwardedFor = client.forwardedFor;
      state.bodyUnread = hasBody(request);
      return refused(state, client.status, client.reason, started);
    }
    state.clientIp = client.clientIp;

    let body: Buffer | undefined;
    try {
      body = await readBody(request, bodyOptions);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      if (scan.oin !== undefined) noteOinHeader(state, scan.oin);
      state.bodyUnread = true;
      return refused(state, error.status, error.reason, started);
    }
    // Spelled out: an object spread here cost more than the rest of the gate (profiled).
    const facts: RequestFacts = {
      peer: headerFacts.peer,
      peerAddress: headerFacts.peerAddress,
      peerText: headerFacts.peerText,
      forwardedFor: headerFacts.forwardedFor,
      repeatedHeader: headerFacts.repeatedHeader,
      oinHeader: scan.oin,
      body,
      authorization: request.headers.authorization,
      certificate,
    };
    let decision = decideWithBody(client, facts, snapshot as Snapshot, policy, now(), keys, options.tokenCache);
    if (!decision.allowed && decision.tenant !== undefined && options.refreshKeys) {
      if (await options.refreshKeys(decision.tenant)) {
        decision = decide(facts, options.snapshot(), policy, now(), keys, options.tokenCache);
      }
    }
    state.clientIp = decision.clientIp;
    state.oin = decision.oin;
    state.kid = decision.kid ?? undefined;
    if (!decision.allowed) {
      if (decision.oinHeader !== undefined) state.oinHeader = decision.oinHeader;
      if (decision.oinBody !== undefined) state.oinBody = decision.oinBody;
      if (decision.jti !== undefined) state.jti = decision.jti;
      // A metric label only for a tenant of the whitelist, never for an OIN a caller made up.
      const tenant = metrics.tenantLabels && decision.oin !== undefined ? options.snapshot()?.tenants.get(decision.oin) : undefined;
      return refused(state, decision.status, decision.reason, started, tenant);
    }
    // Only a request that passed every check spends the tenant's budget.
    const limit = decision.tenant.rateLimit;
    if (limit !== undefined && rateLimiter !== undefined) {
      const taken = rateLimiter.take(decision.oin, limit);
      // Synchronous when counted locally: no extra turn for the await.
      const spent = taken instanceof Promise ? await taken : taken;
      state.rateLimit = spent;
      if (!spent.allowed) return refused(state, 429, 'rate_limited', started, metrics.tenantLabels ? decision.tenant : undefined);
    }
    metrics.decisionSeconds.observe((performance.now() - started) / 1000);
    state.outcome = 'allowed';
    state.reason = 'ok';
    if (metrics.tenantLabels) metrics.decision('allowed', 'ok', decision.oin, decision.kid ?? undefined).inc();
    else metrics.allowed.inc();
    state.decision = decision;
    state.body = body;
    if (claimHeaders.length > 0) {
      const extra = forwardedClaims(decision, state);
      if (extra !== undefined) state.extraHeaders = extra;
    }
    // The certificate bound to the OIN, for the upstream (or the front proxy) to log or pin.
    if (decision.certificateSha256 !== undefined) (state.extraHeaders ??= []).push('x-authenticated-certificate-sha256', decision.certificateSha256);
    return decision;
  };
}
