import { createHash, hash, type KeyObject } from 'node:crypto';
import type { IpAddress } from '../ip/address.ts';
import { CidrError, CidrSet, parseCidr, type Cidr } from '../ip/cidr.ts';
import { IntervalCollector, type IntervalSet } from '../ip/interval-set.ts';
import { readRateLimit, type RateLimit } from '../limit/rate.ts';
import { LayeredMap } from './layered-map.ts';
import { StreamedTenants, tenantList, type TenantList } from './packed-tenants.ts';
import { isAllowedJwksScheme } from '../token/jwks-url.ts';
import { keySet, MAX_KID_LENGTH, type KeySet, type KidIndex, type TenantKey } from '../token/key.ts';
import { buildHmacKey, buildPublicKey, hmacSecretBytes, KeyMaterialError } from '../token/keys.ts';
import { isAlgorithm, isHmac, ALGORITHMS } from './algorithms.ts';
import { describeValue, WhitelistError, type ValidationIssue } from './errors.ts';
import {
  MAX_CIDRS_PER_TENANT,
  MAX_ISSUER_AUDIENCE_LENGTH,
  MAX_KEYS_PER_TENANT,
  MAX_REVOKED_TOKENS,
  MAX_TENANTS,
  tooManyRevoked,
  tooManyTenants,
} from './limits.ts';
import { runNow, runSliced, sortIndices, type Work } from './pacing.ts';
import { decodePrepared, encodeIssues, encodePrepared, type PreparedKey, type PreparedTenant } from './prepared.ts';
import { enforcedJtis, readRevocations, revocationsDigest, type Revocation, type RevocationsByTenant } from './revocations.ts';
import { has, isRecord, readText, readTime } from './values.ts';
import { AUTHENTICATIONS, type Authentication } from './authentication.ts';

export { AUTHENTICATIONS, type Authentication };

/** One tenant as enforced: everything a request needs is prebuilt. */
export interface Tenant {
  readonly oin: string;
  readonly name: string;
  readonly enabled: boolean;
  readonly cidrs: CidrSet;
  readonly cidrTexts: readonly string[];
  readonly keys: KeySet;
  readonly jwksUri: string | undefined;
  /** Checked instead of OINGATE_ISSUER for this tenant's tokens, when set. */
  readonly issuer?: string;
  /** Checked instead of OINGATE_AUDIENCE for this tenant's tokens, when set. */
  readonly audience?: string;
  /** Requests per second and burst after every other check passed (contract §11); undefined: no limit. */
  readonly rateLimit?: RateLimit | undefined;
  /** 'token' unless the whitelist says otherwise. */
  readonly authentication?: Authentication;
  /** Tokens with an `iat` not after this (ms), or without one, are revoked (contract §10); undefined: none. */
  readonly tokensIssuedAfter: number | undefined;
  /** The jtis revoked for this tenant whose tokens may still be valid; undefined: none. */
  readonly revokedTokens: ReadonlySet<string> | undefined;
}

/** The enforced whitelist. Immutable; a reload builds a new one and swaps it. */
export interface Snapshot {
  /** Digest of the enforced content; changes exactly when the whitelist does. */
  readonly version: string;
  readonly tenants: ReadonlyMap<string, Tenant>;
  readonly loadedAt: Date;
  /** Revoked jtis enforced, all tenants together (for the oingate_revoked_tokens gauge). */
  readonly revokedTokens: number;
  /**
   * True when `ip` lies in some enabled tenant's ranges. Asked before a
   * request's body is read, so traffic from outside every whitelist costs
   * next to nothing: a binary search over the merged union, O(log n).
   */
  covers(ip: IpAddress): boolean;
}

export interface SnapshotOptions {
  /** Tenants' OINs must match it, as requests' OINs must. */
  readonly oinPattern: RegExp;
  /**
   * Yield to the event loop this often (ms) so a huge reload never stalls
   * requests: between tenants, and within one per range and per key.
   */
  readonly sliceMs?: number;
  /**
   * Whether a client certificate can reach the gate at all (a client CA on
   * the listener, or a front proxy's header). Without one, a tenant that
   * needs a certificate could never be called: such a whitelist is refused.
   * Unset: not checked (oingate check without settings).
   */
  readonly certificatesConfigured?: boolean;
  /**
   * The snapshot now enforced, if any: a tenant whose document is exactly
   * the one that built it there is taken over as it is (no key import, no
   * CIDR build), so an unchanged tenant keeps its identity and its caches.
   */
  readonly previous?: Snapshot;
  /**
   * The clock tolerance of token checks (ms): a revocation is forgotten only
   * once its token's expiry lies further back than this. Default 0.
   */
  readonly clockToleranceMs?: number;
  /** The time revocations are judged at (ms); default Date.now(). */
  readonly nowMs?: number;
}

/**
 * A change to the enforced whitelist, as a store with change tracking
 * (PostgreSQL) reads it: the whole current document of every tenant that
 * changed or was added, with all of its revoked tokens (entries as in the
 * file's `revokedTokens`, each naming an upserted tenant), and the OINs of
 * tenants that are gone. A revocation is thus one more change to one tenant.
 */
export interface ChangeSet {
  readonly upserts: readonly unknown[];
  readonly removals: readonly string[];
  readonly revokedTokens?: readonly unknown[];
}

/**
 * What a snapshot keeps to be changed incrementally, out of its public
 * shape: the version's running sum, the base union of ranges and the
 * overlay of tenants changed since that base was built.
 */
interface Internals {
  readonly pattern: string;
  readonly sum: Uint32Array;
  readonly base: IntervalSet;
  /** Tenants changed or added since `base` was built (removed ones are simply absent). */
  readonly overlay: Map<string, Tenant>;
  readonly overlayUnion: IntervalSet | undefined;
  /** Tenants changed, added or removed since `base` was built. */
  readonly drift: number;
}

/**
 * Per tenant, on the object under a symbol (shared tenants share it,
 * nothing is copied per change): the digest its version sums, and the
 * digest of the document it was built from.
 */
interface TenantDigests {
  /** SHA-256, base64: a short string costs less memory than a Buffer per tenant. */
  readonly fingerprint: string;
  /** The fingerprint of the tenant without its revoked tokens (the same string when it has none). */
  readonly core: string;
  readonly document: string;
  /** The digest of its revoked tokens as written ('' when none; see revocationsDigest). */
  readonly revocations: string;
}

// On the tenant itself, not in a WeakMap: 100,000 ephemerons made the final
// marking of every full GC take 160-290 ms. A symbol, so JSON and
// Object.keys never show it; a field of the object literal, since one added
// later costs each tenant an out-of-object property array.
const DIGESTS = Symbol('oingate.tenantDigests');

type WithDigests = { [DIGESTS]: TenantDigests | undefined };

function digestsOf(tenant: Tenant): TenantDigests {
  return (tenant as unknown as WithDigests)[DIGESTS]!;
}

function setDigests(tenant: Tenant, value: TenantDigests): void {
  (tenant as unknown as WithDigests)[DIGESTS] = value;
}

/** The digest a snapshot's version sums for this tenant, as bytes. */
function fingerprintOf(tenant: Tenant): Buffer {
  return Buffer.from(digestsOf(tenant).fingerprint, 'base64');
}

const internals = new WeakMap<Snapshot, Internals>();

// The overlay of changed tenants is checked after the base union; past this
// many changes since the base was built, the base is rebuilt (in steps).
const MAX_DRIFT = 512;
// Tenants changed or removed since the tenants' map was last copied whole.
const MAX_DELTA = 2048;

const TENANT_FIELDS = new Set([
  'oin', 'name', 'enabled', 'cidrs', 'keys', 'jwksUri', 'issuer', 'audience', 'rateLimit', 'authentication', 'tokensIssuedAfter',
]);
const KEY_FIELDS = new Set(['kid', 'alg', 'secret', 'publicKey', 'enabled', 'notBefore', 'expiresAt']);
const TOP_FIELDS = new Set(['tenants', 'revokedTokens', '$schema']);

/**
 * Validates a whitelist document (file or database rows) and builds the
 * snapshot: CIDR matchers and `KeyObject`s once, here, never per request.
 * Collects every problem before refusing, so `oingate check` lists them all.
 * Runs in steps (see {@link SnapshotOptions.sliceMs}).
 */
export async function buildSnapshot(document: unknown, options: SnapshotOptions): Promise<Snapshot> {
  return runSliced(buildAll(document, options), options.sliceMs ?? 10);
}

function* buildAll(document: unknown, options: SnapshotOptions): Work<Snapshot> {
  if (!isRecord(document)) {
    throw new WhitelistError([{ path: '$', message: 'must be an object with a "tenants" array' }]);
  }
  const list = tenantList(document['tenants']);
  if (list instanceof StreamedTenants) return yield* buildStreamed(list, options);
  const issues = topLevelIssues(document);
  if (!list) {
    throw new WhitelistError([...issues, { path: 'tenants', message: 'must be an array' }]);
  }
  if (list.length > MAX_TENANTS) {
    throw new WhitelistError([...issues, tooManyTenants(list.length)]);
  }
  const revocations = yield* readRevocations(document['revokedTokens'], 'revokedTokens', options.oinPattern, issues);
  const built = yield* tenantsOf(list, reusable(options), revocations, options, issues);
  unknownRevoked(revocations, built.oins, issues, NOT_A_TENANT);
  if (issues.length > 0) throw new WhitelistError(issues);
  return yield* built.seal();
}

const NOT_A_TENANT = 'is not a tenant of this whitelist';

/** An issue for each top-level field that is not one of the document's. */
function topLevelIssues(document: Record<string, unknown>): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const key of Object.keys(document)) {
    if (!TOP_FIELDS.has(key)) issues.push({ path: '$', message: `unknown field "${key}"` });
  }
  return issues;
}

/**
 * A document whose tenants are still arriving from the parsing thread: they
 * are built as they come, and what the file holds around them (top-level
 * fields, the revoked tokens, which follow the tenants) is read once the
 * parse completed. The issues, and the snapshot, are exactly those of
 * buildAll on the parsed document: its issues in its order, and revocations
 * applied by a second walk that takes every tenant over from the first.
 */
function* buildStreamed(list: StreamedTenants, options: SnapshotOptions): Work<Snapshot> {
  const tenantIssues: ValidationIssue[] = [];
  const built = yield* tenantsOf(list, reusable(options), undefined, options, tenantIssues);
  // Grown past MAX_TENANTS, the walk stopped building; the rest still has to parse.
  for (let arrival = list.arrival(); arrival !== undefined; arrival = list.arrival()) yield arrival;
  const document = list.rest();
  const issues = topLevelIssues(document);
  if (list.length > MAX_TENANTS) {
    throw new WhitelistError([...issues, tooManyTenants(list.length)]);
  }
  const revocations = yield* readRevocations(document['revokedTokens'], 'revokedTokens', options.oinPattern, issues);
  issues.push(...tenantIssues);
  unknownRevoked(revocations, built.oins, issues, NOT_A_TENANT);
  if (issues.length > 0) throw new WhitelistError(issues);
  const first = yield* built.seal();
  // Taken-over tenants kept the revocations they had; new ones have none.
  if (revocations.byOin.size === 0 && !built.revoking) return first;
  const again = yield* tenantsOf(list, first, revocations, options, []);
  return yield* again.seal();
}

/** The valid tenants of a list, walked: their OINs, and the snapshot they make. */
interface Walked {
  readonly oins: { has(oin: string): boolean };
  /** Whether some tenant holds revocations. */
  readonly revoking: boolean;
  seal(): Work<Snapshot>;
}

/**
 * Walks `list` (see eachTenant) into a fresh snapshot, or over `previous` as a
 * change to it: every tenant is validated as in a full build, but the result
 * shares the current tenants' map and range union, and only tenants that
 * differ (or are gone) are added to it, as applyChanges does. A reload of
 * 100,000 tenants of which a few changed thus allocates in proportion to
 * those few, not a new map and union each time (whose garbage cost full
 * collections that paused requests), and gives the same version a full
 * build would. Its snapshot is only to be sealed when `issues` stayed empty.
 */
function* tenantsOf(
  list: TenantList,
  previous: Snapshot | undefined,
  revocations: RevocationsByTenant | undefined,
  options: SnapshotOptions,
  issues: ValidationIssue[],
): Work<Walked> {
  let revoking = false;
  if (!previous) {
    const tenants = new Map<string, Tenant>();
    const sum = new Uint32Array(8);
    let revoked = 0;
    yield* eachTenant(list, undefined, revocations, options, issues, tenants, (tenant) => {
      tenants.set(tenant.oin, tenant);
      addDigest(sum, fingerprintOf(tenant));
      revoked += tenant.revokedTokens?.size ?? 0;
      revoking ||= digestsOf(tenant).revocations !== '';
    });
    return {
      oins: tenants,
      revoking,
      *seal() {
        const union = yield* enabledUnion(tenants);
        const state = { pattern: options.oinPattern.source, sum, base: union, overlay: new Map(), overlayUnion: undefined, drift: 0 };
        return seal(tenants, state, revoked);
      },
    };
  }
  const present = new Set<string>();
  const differing = new Map<string, Tenant>();
  yield* eachTenant(list, previous, revocations, options, issues, present, (tenant) => {
    present.add(tenant.oin);
    if (previous.tenants.get(tenant.oin) !== tenant) differing.set(tenant.oin, tenant);
    revoking ||= digestsOf(tenant).revocations !== '';
  });
  return {
    oins: present,
    revoking,
    *seal() {
      const removals: string[] = [];
      let count = 0;
      for (const oin of previous.tenants.keys()) {
        if (!present.has(oin)) removals.push(oin);
        if ((++count & 4095) === 0) yield;
      }
      return yield* changed(previous, internals.get(previous)!, differing, removals);
    },
  };
}

/**
 * Gives `take` each valid tenant of `list` (see tenantOf) in order, once per
 * OIN: one whose OIN `taken` already holds is an issue.
 */
function* eachTenant(
  list: TenantList,
  previous: Snapshot | undefined,
  revocations: RevocationsByTenant | undefined,
  options: SnapshotOptions,
  issues: ValidationIssue[],
  taken: { has(oin: string): boolean },
  take: (tenant: Tenant) => void,
): Work<void> {
  // Tenants prepared by the thread that parsed them, under these very
  // options, are built from that; only when nothing could be taken over.
  const preparation = previous === undefined && list.prepared ? preparationKey(options) : undefined;
  // A list still arriving is walked as far as it has come, then waited for.
  // One that has grown past MAX_TENANTS is not built on (its caller refuses
  // it, as a list known to be longer is refused before any walk).
  for (let index = 0; ; index++) {
    while (index >= list.length) {
      const arrival = list.arrival?.();
      if (arrival === undefined) return;
      yield arrival;
    }
    if (list.length > MAX_TENANTS) return;
    const tenant = yield* tenantOf(list, index, previous, revocations, options, issues, preparation);
    if (tenant) {
      if (taken.has(tenant.oin)) issues.push({ path: `tenants[${index}].oin`, message: `duplicate OIN "${tenant.oin}"` });
      else take(tenant);
    }
    // A step per tenant; a large one yields within (per 64 ranges, per key).
    // Leaf steps are kept few: each resumes every generator up to runSliced.
    yield;
  }
}

/**
 * One tenant of a document, with its revoked tokens: taken over from
 * `previous` when built there from exactly this document (a copy with the
 * new revocations when only those differ, so its keys and their caches
 * stay), else built: from what the parsing thread prepared under the
 * options `preparation` names, when it did. Undefined when it has issues.
 */
function* tenantOf(
  list: TenantList,
  index: number,
  previous: Snapshot | undefined,
  revocations: RevocationsByTenant | undefined,
  options: SnapshotOptions,
  issues: ValidationIssue[],
  preparation?: string,
): Work<Tenant | undefined> {
  const documentDigest = list.digest(index);
  const prepared = preparation === undefined ? undefined : list.prepared?.(index, preparation);
  const tenant =
    prepared !== undefined
      ? yield* fromPrepared(prepared, documentDigest, issues)
      : yield* builtOrKept(list, index, previous, options, issues, documentDigest);
  // Without revocations (not read yet), a tenant keeps those it has.
  return tenant && revocations ? withRevocations(tenant, revocations.byOin.get(tenant.oin), options) : tenant;
}

/** Tenant `index` of `list` taken over from `previous` when built there from the same document, else built from its document. */
function* builtOrKept(
  list: TenantList,
  index: number,
  previous: Snapshot | undefined,
  options: SnapshotOptions,
  issues: ValidationIssue[],
  documentDigest: string,
): Work<Tenant | undefined> {
  const oin = list.oin(index);
  const kept = oin !== undefined && documentDigest !== '' ? taken(previous, oin, documentDigest) : undefined;
  if (kept) return kept;
  // Built again (its document differs): its unchanged secrets keep the key objects it had.
  const donor = oin === undefined ? undefined : previous?.tenants.get(oin);
  return yield* buildTenantDigest(list.document(index), `tenants[${index}]`, options, issues, documentDigest, donor);
}

/** An issue for each revocation whose OIN is not among `tenants`. */
function unknownRevoked(revocations: RevocationsByTenant, tenants: { has(oin: string): boolean }, issues: ValidationIssue[], why: string): void {
  for (const [oin, place] of revocations.firstPlace) {
    if (!tenants.has(oin)) issues.push({ path: place, message: `tenant ${describeValue(oin)} ${why}` });
  }
}

/**
 * `tenant` holding exactly these revocations: itself when it already does,
 * else a copy that shares its keys, ranges and everything else.
 */
function withRevocations(tenant: Tenant, list: readonly Revocation[] | undefined, options: SnapshotOptions): Tenant {
  const own = digestsOf(tenant);
  const revocations = revocationsDigest(list);
  if (own.revocations === revocations) return tenant;
  const revokedTokens = enforcedJtis(list, options.nowMs ?? Date.now(), options.clockToleranceMs ?? 0);
  const next: Tenant = { ...tenant, revokedTokens };
  const fingerprint = revocations === '' ? own.core : (hash('sha256', `${own.core}\u0001revoked\u0000${revocations}`, 'base64') as string);
  setDigests(next, { fingerprint, core: own.core, document: own.document, revocations });
  return next;
}

/** The previous snapshot, when its tenants may be taken over under these options (same OIN pattern). */
function reusable(options: SnapshotOptions): Snapshot | undefined {
  const snapshot = options.previous;
  const state = snapshot ? internals.get(snapshot) : undefined;
  return state && state.pattern === options.oinPattern.source ? snapshot : undefined;
}

/** A tenant of the previous snapshot built from exactly this document. */
function taken(previous: Snapshot | undefined, oin: string, documentDigest: string): Tenant | undefined {
  const tenant = previous?.tenants.get(oin);
  return tenant && digestsOf(tenant).document === documentDigest ? tenant : undefined;
}

/** Builds a tenant and records its digests on it. */
function* buildTenantDigest(
  raw: unknown,
  path: string,
  options: SnapshotOptions,
  issues: ValidationIssue[],
  document: string,
  donor?: Tenant,
): Work<Tenant | undefined> {
  const prepared = yield* prepareTenant(raw, path, options, issues, { donors: donor?.keys.byKid });
  if (!prepared) return undefined;
  const fingerprint = hash('sha256', yield* tenantFingerprint(prepared), 'base64') as string;
  return yield* materialize(prepared, fingerprint, document);
}

/** The tenant a prepared one makes, its digests recorded: its range set and any key objects still missing built. */
function* materialize(prepared: PreparedTenant, fingerprint: string, document: string): Work<Tenant> {
  const keys: TenantKey[] = [];
  for (let index = 0; index < prepared.keys.length; index++) {
    if (index > 0) yield;
    const key = prepared.keys[index]!;
    keys.push({
      kid: key.kid,
      alg: key.alg,
      key: key.key ?? (isHmac(key.alg) ? buildHmacKey(key.kid, key.alg, key.material) : buildPublicKey(key.kid, key.alg, key.material)),
      enabled: key.enabled,
      notBefore: key.notBefore,
      expiresAt: key.expiresAt,
    });
  }
  // Not frozen one by one: the types are readonly, and freezing 100k tenants
  // and their keys measurably slowed reloads. The snapshot itself is frozen.
  const tenant: Tenant = {
    oin: prepared.oin,
    name: prepared.name,
    enabled: prepared.enabled,
    cidrs: yield* CidrSet.build(prepared.cidrs),
    cidrTexts: prepared.cidrs.map((c) => c.text),
    keys: keySet(keys),
    jwksUri: prepared.jwksUri,
    // Always present (undefined when unset): one object shape for every tenant on the hot path.
    issuer: prepared.issuer,
    audience: prepared.audience,
    rateLimit: prepared.rateLimit,
    tokensIssuedAfter: prepared.tokensIssuedAfter,
    revokedTokens: undefined,
    [DIGESTS]: { fingerprint, core: fingerprint, document, revocations: '' },
  } as Tenant;
  // Only set when not the default, so the common tenant stays as small as before.
  if (prepared.authentication !== 'token') (tenant as { authentication?: Authentication }).authentication = prepared.authentication;
  return tenant;
}

/**
 * A tenant validated and prepared on the thread that parsed the file, as
 * {@link preparedText} encoded it: its issues recorded, or the tenant built
 * from it (its key objects and range set, here).
 */
function* fromPrepared(text: string, document: string, issues: ValidationIssue[]): Work<Tenant | undefined> {
  const decoded = decodePrepared(text);
  if (!('tenant' in decoded)) {
    issues.push(...decoded.issues);
    return undefined;
  }
  return yield* materialize(decoded.tenant, decoded.fingerprint, document);
}

/**
 * What the thread that parses a whitelist file hands over instead of a
 * tenant's text: the tenant validated under `options` by the very code a
 * build runs (its issues, or its fields, parsed ranges and checked key
 * material, and the digest its version sums), so that the build only makes
 * its key objects and range set. The tenant's place in the document is `index`.
 */
export function preparedText(raw: unknown, index: number, options: SnapshotOptions): string {
  const issues: ValidationIssue[] = [];
  const prepared = runNow(prepareTenant(raw, `tenants[${index}]`, options, issues, { keyObjects: false }));
  if (!prepared) return encodeIssues(issues);
  return encodePrepared(prepared, hash('sha256', runNow(tenantFingerprint(prepared)), 'base64') as string);
}

/** What the options that validation depends on are, as one text: prepared tenants are used only under equal ones. */
export function preparationKey(options: SnapshotOptions): string {
  return JSON.stringify([options.oinPattern.source, options.oinPattern.flags, options.certificatesConfigured ?? null]);
}

function seal(tenants: ReadonlyMap<string, Tenant>, state: Internals, revokedTokens: number): Snapshot {
  const { base, overlayUnion } = state;
  const snapshot: Snapshot = Object.freeze({
    version: versionOf(state.sum, tenants.size),
    tenants,
    loadedAt: new Date(),
    revokedTokens,
    covers: overlayUnion ? (ip: IpAddress) => base.contains(ip) || overlayUnion.contains(ip) : (ip: IpAddress) => base.contains(ip),
  });
  internals.set(snapshot, state);
  return snapshot;
}

/**
 * Applies a change set to a snapshot and gives the next one: upserts are
 * validated with exactly the rules of {@link buildSnapshot} (issues placed
 * at `tenants[i]`, i the upsert's index), and any issue refuses the whole
 * change. Every tenant not named is shared with `current`; the version is
 * kept as the order-free sum of per-tenant digests, so it equals what a full
 * build of the same content gives, at a cost in proportion to the change.
 * Removals of OINs that are not there are ignored; an OIN both removed and
 * upserted ends up upserted.
 */
export async function applyChanges(current: Snapshot, changes: ChangeSet, options: SnapshotOptions): Promise<Snapshot> {
  return runSliced(applyAll(current, changes, options), options.sliceMs ?? 10);
}

function* applyAll(current: Snapshot, changes: ChangeSet, options: SnapshotOptions): Work<Snapshot> {
  const state = internals.get(current);
  if (!state || state.pattern !== options.oinPattern.source) {
    throw new TypeError('applyChanges needs a snapshot built by buildSnapshot with the same OIN pattern');
  }
  const issues: ValidationIssue[] = [];
  const built = new Map<string, Tenant>();
  const revocations = yield* readRevocations(changes.revokedTokens, 'revokedTokens', options.oinPattern, issues);
  yield* eachTenant(tenantList(changes.upserts)!, current, revocations, options, issues, built, (tenant) => built.set(tenant.oin, tenant));
  unknownRevoked(revocations, built, issues, 'is not among the tenants of this change');
  if (issues.length > 0) throw new WhitelistError(issues);
  return yield* changed(current, state, built, changes.removals);
}

/**
 * `current` with the tenants `built` (validated; an OIN there replaces or
 * adds) and without `removals` (unless built): the tenants' map and range
 * union shared, the version's sum adjusted by the tenants that differ.
 */
function* changed(current: Snapshot, state: Internals, built: ReadonlyMap<string, Tenant>, removals: Iterable<string>): Work<Snapshot> {
  // The new tenants: the current base shared, a small delta copied and changed.
  const layered = current.tenants instanceof LayeredMap ? (current.tenants as LayeredMap<string, Tenant>) : undefined;
  const base = layered ? layered.base : current.tenants;
  const delta = new Map<string, Tenant | undefined>(layered?.delta);
  const lookup = (oin: string): Tenant | undefined => (delta.has(oin) ? delta.get(oin) : base.get(oin));
  let size = current.tenants.size;
  const sum = Uint32Array.from(state.sum);
  const overlay = new Map(state.overlay);
  let drift = state.drift;
  let revoked = current.revokedTokens;
  const drop = (oin: string): void => {
    const old = lookup(oin);
    if (!old) return;
    revoked -= old.revokedTokens?.size ?? 0;
    subtractDigest(sum, fingerprintOf(old));
    delta.set(oin, undefined);
    overlay.delete(oin);
    size--;
    drift++;
  };
  // A file reload may change every tenant: steps, not one long loop.
  let steps = 0;
  for (const [oin, tenant] of built) {
    if ((++steps & 1023) === 0) yield;
    const old = lookup(oin);
    // Same content: keep the tenant the caches know, now known by this
    // document too (a reformatted file is then taken over at its next reload).
    if (old && digestsOf(old).fingerprint === digestsOf(tenant).fingerprint) {
      const document = digestsOf(tenant).document;
      if (document !== '') setDigests(old, { ...digestsOf(old), document });
      continue;
    }
    // An added tenant drifts too: the overlay, walked on every change, holds it.
    if (old) drop(oin);
    else drift++;
    delta.set(oin, tenant);
    addDigest(sum, fingerprintOf(tenant));
    revoked += tenant.revokedTokens?.size ?? 0;
    overlay.set(oin, tenant);
    size++;
  }
  // After the upserts, so that the change log lists tenants in the document's order, the removed last.
  for (const oin of removals) {
    if (!built.has(oin)) drop(oin);
    if ((++steps & 1023) === 0) yield;
  }
  if (size > MAX_TENANTS) {
    throw new WhitelistError([tooManyTenants(size)]);
  }
  if (revoked > MAX_REVOKED_TOKENS) {
    throw new WhitelistError([tooManyRevoked('revokedTokens', revoked)]);
  }
  // Past a bound, the delta is folded into a new base (a copy in steps), so lookups stay two.
  const next = new LayeredMap<string, Tenant>(base, delta, size);
  const tenants = delta.size > MAX_DELTA ? yield* copyMap(next) : next;
  const pattern = state.pattern;
  if (drift > MAX_DRIFT) {
    const union = yield* enabledUnion(tenants);
    return seal(tenants, { pattern, sum, base: union, overlay: new Map(), overlayUnion: undefined, drift: 0 }, revoked);
  }
  const overlayUnion = overlay.size > 0 ? yield* enabledUnion(overlay) : undefined;
  return seal(tenants, { pattern, sum, base: state.base, overlay, overlayUnion, drift }, revoked);
}

/** A copy of a map of 100k entries, in steps. */
function* copyMap<K, V>(from: ReadonlyMap<K, V>): Work<Map<K, V>> {
  const to = new Map<K, V>();
  let count = 0;
  for (const [key, value] of from) {
    to.set(key, value);
    if ((++count & 4095) === 0) yield;
  }
  return to;
}

/** Every enabled tenant's ranges as one merged set, from the tenants' intervals (no texts re-parsed). */
function* enabledUnion(tenants: ReadonlyMap<string, Tenant>): Work<IntervalSet> {
  const into = new IntervalCollector();
  let count = 0;
  for (const tenant of tenants.values()) {
    if (tenant.enabled) yield* tenant.cidrs.intervals.copyInto(into);
    if ((++count & 63) === 0) yield;
  }
  return yield* into.build();
}

/**
 * How a validation builds key objects: reusing those of `donors` (the keys
 * the tenant had) for unchanged secrets, and none at all when `keyObjects`
 * is false (a thread that cannot hand them over).
 */
interface Keying {
  readonly donors?: KidIndex | undefined;
  readonly keyObjects?: boolean;
}

/**
 * Validates a tenant's document: every issue recorded, or the tenant as it
 * will be enforced, its ranges parsed and its key material checked (its key
 * objects built as `keying` says).
 */
function* prepareTenant(
  raw: unknown,
  path: string,
  options: SnapshotOptions,
  issues: ValidationIssue[],
  keying: Keying,
): Work<PreparedTenant | undefined> {
  if (!isRecord(raw)) {
    issues.push({ path, message: 'must be an object' });
    return undefined;
  }
  const before = issues.length;
  for (const key of Object.keys(raw)) {
    if (!TENANT_FIELDS.has(key)) issues.push({ path, message: `unknown field "${key}"` });
  }

  const oin = raw['oin'];
  if (typeof oin !== 'string') {
    issues.push({ path: `${path}.oin`, message: 'must be a string' });
  } else if (!options.oinPattern.test(oin)) {
    issues.push({ path: `${path}.oin`, message: `"${oin}" does not match the OIN pattern ${options.oinPattern.source}` });
  }
  const name = has(raw, 'name') ? raw['name'] : '';
  if (typeof name !== 'string') issues.push({ path: `${path}.name`, message: 'must be a string' });
  const enabled = has(raw, 'enabled') ? raw['enabled'] : true;
  if (typeof enabled !== 'boolean') issues.push({ path: `${path}.enabled`, message: 'must be true or false' });

  const cidrs = yield* buildCidrs(raw['cidrs'], `${path}.cidrs`, oin, issues);
  const keys = has(raw, 'keys') ? yield* buildKeys(raw['keys'], `${path}.keys`, oin, issues, keying) : [];
  const jwksUri = has(raw, 'jwksUri') ? raw['jwksUri'] : undefined;
  if (jwksUri !== undefined) checkJwksUri(jwksUri, `${path}.jwksUri`, issues);
  // A null issuer or audience is refused, as the schema says (a revocation's reason may be null).
  const issuer = readText(raw, 'issuer', path, issues, MAX_ISSUER_AUDIENCE_LENGTH, 'missing');
  const audience = readText(raw, 'audience', path, issues, MAX_ISSUER_AUDIENCE_LENGTH, 'missing');
  const rateLimit = readRateLimit(raw['rateLimit'], `${path}.rateLimit`, issues);
  const tokensIssuedAfter = readTime(raw, 'tokensIssuedAfter', path, issues);
  const authentication = has(raw, 'authentication') ? raw['authentication'] : 'token';
  if (!AUTHENTICATIONS.includes(authentication as Authentication)) {
    issues.push({ path: `${path}.authentication`, message: `${describeValue(authentication)} must be one of ${AUTHENTICATIONS.join(', ')}` });
  } else if (authentication !== 'token' && options.certificatesConfigured === false) {
    issues.push({
      path: `${path}.authentication`,
      message: `tenant ${typeof oin === 'string' ? oin : '?'} needs a client certificate ("${authentication}"), but neither OINGATE_TLS_CLIENT_CA nor OINGATE_CLIENT_CERT_HEADER is set`,
    });
  }

  if (issues.length > before || typeof oin !== 'string' || !cidrs || !keys) return undefined;
  return {
    oin,
    name: name as string,
    enabled: enabled as boolean,
    cidrs,
    keys,
    jwksUri: jwksUri as string | undefined,
    issuer,
    audience,
    rateLimit,
    tokensIssuedAfter,
    authentication: authentication as Authentication,
  };
}

/** Limit messages name the tenant, not only its place in the list. */
function tenantLabel(oin: unknown): string {
  return typeof oin === 'string' ? `tenant ${describeValue(oin)}` : 'the tenant';
}

function* buildCidrs(raw: unknown, path: string, oin: unknown, issues: ValidationIssue[]): Work<Cidr[] | undefined> {
  if (!Array.isArray(raw)) {
    issues.push({ path, message: 'must be an array of CIDR strings' });
    return undefined;
  }
  if (raw.length > MAX_CIDRS_PER_TENANT) {
    // Refused before any is parsed: the excess costs nothing.
    issues.push({ path, message: `${tenantLabel(oin)} has ${raw.length} CIDR ranges; at most ${MAX_CIDRS_PER_TENANT} are allowed per tenant` });
    return undefined;
  }
  const cidrs: Cidr[] = [];
  const seen = raw.length > 1 ? new Set<string>() : undefined;
  for (let index = 0; index < raw.length; index++) {
    const text: unknown = raw[index];
    if (typeof text !== 'string') {
      issues.push({ path: `${path}[${index}]`, message: 'must be a string' });
      continue;
    }
    try {
      const cidr = parseCidr(text);
      if (seen?.has(cidr.text)) issues.push({ path: `${path}[${index}]`, message: `duplicate CIDR "${text}"` });
      else seen?.add(cidr.text);
      cidrs.push(cidr);
    } catch (error) {
      if (!(error instanceof CidrError)) throw error;
      issues.push({ path: `${path}[${index}]`, message: error.message });
    }
    if ((index & 63) === 63) yield;
  }
  return cidrs;
}

function* buildKeys(
  raw: unknown,
  path: string,
  oin: unknown,
  issues: ValidationIssue[],
  keying: Keying,
): Work<PreparedKey[] | undefined> {
  if (!Array.isArray(raw)) {
    issues.push({ path, message: 'must be an array of keys' });
    return undefined;
  }
  if (raw.length > MAX_KEYS_PER_TENANT) {
    issues.push({ path, message: `${tenantLabel(oin)} has ${raw.length} keys; at most ${MAX_KEYS_PER_TENANT} are allowed per tenant` });
    return undefined;
  }
  const built: PreparedKey[] = [];
  const kids = new Set<string>();
  for (let index = 0; index < raw.length; index++) {
    // A step per key after the first (the tenant's own step precedes it): an
    // RSA key takes a good fraction of a millisecond to build.
    if (index > 0) yield;
    const key = buildKey(raw[index], `${path}[${index}]`, issues, keying);
    if (!key) continue;
    if (kids.has(key.kid)) {
      issues.push({ path: `${path}[${index}].kid`, message: `duplicate kid "${key.kid}"` });
      continue;
    }
    kids.add(key.kid);
    built.push(key);
  }
  return built;
}

function buildKey(
  raw: unknown,
  path: string,
  issues: ValidationIssue[],
  keying: Keying,
): PreparedKey | undefined {
  if (!isRecord(raw)) {
    issues.push({ path, message: 'must be an object' });
    return undefined;
  }
  const before = issues.length;
  for (const field of Object.keys(raw)) {
    if (!KEY_FIELDS.has(field)) issues.push({ path, message: `unknown field "${field}"` });
  }
  const kid = raw['kid'];
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH) {
    issues.push({ path: `${path}.kid`, message: `must be a non-empty string of at most ${MAX_KID_LENGTH} characters` });
  }
  const alg = raw['alg'];
  if (!isAlgorithm(alg)) {
    issues.push({ path: `${path}.alg`, message: `${describeValue(alg)} is not supported; must be one of ${ALGORITHMS.join(', ')}` });
  }
  const enabled = has(raw, 'enabled') ? raw['enabled'] : true;
  if (typeof enabled !== 'boolean') issues.push({ path: `${path}.enabled`, message: 'must be true or false' });
  const notBefore = readTime(raw, 'notBefore', path, issues);
  const expiresAt = readTime(raw, 'expiresAt', path, issues);
  if (notBefore !== undefined && expiresAt !== undefined && notBefore >= expiresAt) {
    issues.push({ path: `${path}.expiresAt`, message: 'must be later than notBefore' });
  }
  if (issues.length > before || typeof kid !== 'string' || !isAlgorithm(alg)) return undefined;

  const secret = raw['secret'];
  const publicKey = raw['publicKey'];
  let keyObject: KeyObject | undefined;
  try {
    if (isHmac(alg)) {
      if (publicKey !== undefined) issues.push({ path: `${path}.publicKey`, message: `not allowed with ${alg}; use "secret"` });
      if (typeof secret !== 'string') issues.push({ path: `${path}.secret`, message: `${alg} needs a "secret" string` });
      else if (keying.keyObjects === false) hmacSecretBytes(kid, alg, secret);
      else keyObject = buildHmacKey(kid, alg, secret, keying.donors?.get(kid)?.key);
    } else {
      if (secret !== undefined) issues.push({ path: `${path}.secret`, message: `not allowed with ${alg}; use "publicKey"` });
      if (typeof publicKey !== 'string') issues.push({ path: `${path}.publicKey`, message: `${alg} needs a "publicKey" PEM string` });
      // Built to be checked even when it cannot be handed over (rare, and never per request).
      else keyObject = buildPublicKey(kid, alg, publicKey);
    }
  } catch (error) {
    if (!(error instanceof KeyMaterialError)) throw error;
    issues.push({ path, message: error.message });
  }
  if (issues.length > before || (!keyObject && keying.keyObjects !== false)) return undefined;
  return {
    kid,
    alg,
    enabled: enabled as boolean,
    notBefore,
    expiresAt,
    material: (isHmac(alg) ? secret : publicKey) as string,
    key: keying.keyObjects === false ? undefined : keyObject,
  };
}

function checkJwksUri(raw: unknown, path: string, issues: ValidationIssue[]): void {
  if (typeof raw !== 'string') {
    issues.push({ path, message: 'must be a URL string' });
    return;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Not echoed: an unparseable URL cannot be reliably stripped of a password.
    issues.push({ path, message: 'is not a valid URL' });
    return;
  }
  if (!isAllowedJwksScheme(url)) {
    // Echo the URL without its credentials: the password must not reach logs or /readyz.
    const shown = new URL(url.href);
    shown.username = '';
    shown.password = '';
    const text = url.username || url.password ? shown.href : raw;
    issues.push({ path, message: `"${text}" must use https (plain http only to a loopback address)` });
  }
  if (url.username || url.password) issues.push({ path, message: 'must not contain credentials' });
}

/*
 * The version is a digest of a set that does not depend on order (reordering
 * a file is not a change) and needs no sort of 100k entries: the sum, modulo
 * 2^256, of each tenant's SHA-256, hashed once more with the count. A sum
 * can be taken apart again, so one changed tenant costs one subtraction and
 * one addition, not a pass over every tenant.
 */
function addDigest(sum: Uint32Array, digest: Buffer): void {
  let carry = 0;
  for (let word = 7; word >= 0; word--) {
    const total = (sum[word] as number) + digest.readUInt32BE(word * 4) + carry;
    sum[word] = total >>> 0;
    carry = total > 0xffffffff ? 1 : 0;
  }
}

function subtractDigest(sum: Uint32Array, digest: Buffer): void {
  let borrow = 0;
  for (let word = 7; word >= 0; word--) {
    const total = (sum[word] as number) - digest.readUInt32BE(word * 4) - borrow;
    sum[word] = total >>> 0;
    borrow = total < 0 ? 1 : 0;
  }
}

function versionOf(sum: Uint32Array, count: number): string {
  return createHash('sha256').update(sum).update(String(count)).digest('hex').slice(0, 16);
}

// Up to this many ranges, a tenant's texts are sorted at once; beyond, in steps.
const SORT_AT_ONCE = 256;

/** A tenant's CIDR texts in code-unit order (as Array.prototype.sort orders strings). */
function* sortedTexts(texts: readonly string[]): Work<string[]> {
  if (texts.length <= SORT_AT_ONCE) return [...texts].sort();
  const order = yield* sortIndices(texts.length, (a, b) => {
    const x = texts[a]!;
    const y = texts[b]!;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return Array.from(order, (i) => texts[i]!);
}

/**
 * What the version digest covers: every enforced fact, key material as the
 * operator wrote it. Built from strings, not JSON, since it runs 100k times.
 * `issuer` and `audience` are appended only when set, so a whitelist without
 * them keeps the version it had before they existed.
 */
function* tenantFingerprint(tenant: PreparedTenant): Work<string> {
  const cidrs = (yield* sortedTexts(tenant.cidrs.map((c) => c.text))).join(',');
  const keys = tenant.keys
    .map((k) => `${k.kid}\u0000${k.alg}\u0000${k.enabled}\u0000${k.notBefore ?? ''}\u0000${k.expiresAt ?? ''}\u0000${k.material}`)
    .sort()
    .join('\u0002');
  const issuer = tenant.issuer === undefined ? '' : `\u0001issuer\u0000${tenant.issuer}`;
  const audience = tenant.audience === undefined ? '' : `\u0001audience\u0000${tenant.audience}`;
  const authentication = tenant.authentication === 'token' ? '' : `\u0001${tenant.authentication}`;
  const base = `${tenant.oin}\u0001${tenant.name}\u0001${tenant.enabled}\u0001${cidrs}\u0001${keys}\u0001${tenant.jwksUri ?? ''}${issuer}${audience}${authentication}`;
  // Appended only when set, so the versions of whitelists without limits stay as they were.
  const limit = tenant.rateLimit;
  const limited = limit === undefined ? base : `${base}\u0001rateLimit ${limit.perSecond}/${limit.burst}`;
  return tenant.tokensIssuedAfter === undefined ? limited : `${limited}\u0001tokensIssuedAfter ${tenant.tokensIssuedAfter}`;
}
