/**
 * What one accepted reload changed, per tenant, for the one log line it
 * gets. Names OINs, CIDRs and kids (public), never a secret or key material:
 * a key whose material changed under the same kid shows as `kidsReplaced`.
 * Bounded: a whitelist swapped wholesale logs the first tenants and counts.
 * Sliced: diffing 100k tenants yields to the event loop, as a load does.
 */
import { keysThatMayDiffer } from '../model/layered-map.ts';
import type { Snapshot, Tenant } from '../model/snapshot.ts';
import type { TenantKey } from '../token/key.ts';

/** Tenants listed by name in one summary; the rest are only counted. */
export const MAX_LISTED_TENANTS = 100;
/** CIDRs or kids listed per tenant and kind; the rest are only counted. */
export const MAX_LISTED_ITEMS = 20;

/** Up to MAX_LISTED_ITEMS entries and how many more there were. */
export interface Listed {
  readonly items: readonly string[];
  readonly more: number;
}

export interface TenantChange {
  readonly oin: string;
  readonly change: 'added' | 'removed' | 'changed';
  /** Present when the tenant's enabled flag changed (or on add/remove: its state). */
  readonly enabled?: boolean;
  readonly cidrsAdded?: Listed;
  readonly cidrsRemoved?: Listed;
  readonly kidsAdded?: Listed;
  readonly kidsRemoved?: Listed;
  /** Same kid, new validity window or enabled flag. */
  readonly kidsNewWindow?: Listed;
  /** Same kid, new algorithm or key material. */
  readonly kidsReplaced?: Listed;
  /** Other fields that changed, by name only (name, jwksUri, issuer, audience, authentication, tokensIssuedAfter, rateLimit). */
  readonly fields?: readonly string[];
  /** Token ids newly revoked, and ones no longer revoked (removed, or their token expired): a jti is not a secret. */
  readonly jtisRevoked?: Listed;
  readonly jtisNoLongerRevoked?: Listed;
}

export interface WhitelistChanges {
  readonly tenantsAdded: number;
  readonly tenantsRemoved: number;
  readonly tenantsChanged: number;
  /** The first MAX_LISTED_TENANTS changed tenants, in OIN order of the new whitelist then the removed ones. */
  readonly tenants: readonly TenantChange[];
  /** Changed tenants not listed. */
  readonly moreTenants: number;
}

function listed(all: readonly string[]): Listed | undefined {
  if (all.length === 0) return undefined;
  return { items: all.slice(0, MAX_LISTED_ITEMS), more: Math.max(0, all.length - MAX_LISTED_ITEMS) };
}

const NONE: ReadonlySet<string> = new Set();

/** The items of `a` not in `b`, in `a`'s order. */
function difference(a: Iterable<string>, b: Iterable<string>): string[] {
  const inB = b instanceof Set ? (b as ReadonlySet<string>) : new Set(b);
  const out: string[] = [];
  for (const x of a) if (!inB.has(x)) out.push(x);
  return out;
}

function sameWindow(a: TenantKey, b: TenantKey): boolean {
  return a.enabled === b.enabled && a.notBefore === b.notBefore && a.expiresAt === b.expiresAt;
}

function sameMaterial(a: TenantKey, b: TenantKey): boolean {
  // KeyObject#equals compares the key itself; its bytes never leave here.
  return a.alg === b.alg && a.key.equals(b.key);
}

const FIELDS = ['name', 'jwksUri', 'issuer', 'audience', 'authentication', 'tokensIssuedAfter'] as const;

function sameRateLimit(a: Tenant, b: Tenant): boolean {
  const x = a.rateLimit;
  const y = b.rateLimit;
  return x === y || (x !== undefined && y !== undefined && x.perSecond === y.perSecond && x.burst === y.burst);
}

/** Sets only the parts that are present, so the log line carries no empty lists. */
function compact(change: Record<string, unknown>): TenantChange {
  for (const key of Object.keys(change)) if (change[key] === undefined) delete change[key];
  return change as unknown as TenantChange;
}

/** Cheap, allocation-free check for the common case: a tenant that did not change at all. */
function unchanged(before: Tenant, after: Tenant): boolean {
  if (before.enabled !== after.enabled) return false;
  for (const f of FIELDS) if (before[f] !== after[f]) return false;
  if (!sameRateLimit(before, after)) return false;
  // A new set is built only when the revocations changed; the same set is shared otherwise.
  if (before.revokedTokens !== after.revokedTokens) return false;
  const bc = before.cidrTexts;
  const ac = after.cidrTexts;
  if (bc.length !== ac.length) return false;
  for (let i = 0; i < bc.length; i++) if (bc[i] !== ac[i]) return false;
  const bk = before.keys.list;
  const ak = after.keys.list;
  if (bk.length !== ak.length) return false;
  for (let i = 0; i < bk.length; i++) {
    const b = bk[i] as TenantKey;
    const a = ak[i] as TenantKey;
    if (b.kid !== a.kid || !sameWindow(b, a) || !sameMaterial(b, a)) return false;
  }
  return true;
}

/** What changed in one tenant present in both; undefined when nothing did. */
function tenantChange(before: Tenant, after: Tenant): TenantChange | undefined {
  const beforeKeys = new Map(before.keys.list.map((k) => [k.kid, k]));
  const afterKids = after.keys.list.map((k) => k.kid);
  const newWindow: string[] = [];
  const replaced: string[] = [];
  for (const key of after.keys.list) {
    const old = beforeKeys.get(key.kid);
    if (old === undefined) continue;
    if (!sameMaterial(old, key)) replaced.push(key.kid);
    else if (!sameWindow(old, key)) newWindow.push(key.kid);
  }
  const fields: string[] = FIELDS.filter((f) => before[f] !== after[f]);
  if (!sameRateLimit(before, after)) fields.push('rateLimit');
  // The sets themselves: a tenant may hold 100,000 revoked jtis.
  const revokedBefore = before.revokedTokens ?? NONE;
  const revokedAfter = after.revokedTokens ?? NONE;
  const change = compact({
    oin: after.oin,
    change: 'changed',
    enabled: before.enabled !== after.enabled ? after.enabled : undefined,
    cidrsAdded: listed(difference(after.cidrTexts, before.cidrTexts)),
    cidrsRemoved: listed(difference(before.cidrTexts, after.cidrTexts)),
    kidsAdded: listed(difference(afterKids, beforeKeys.keys())),
    kidsRemoved: listed(difference(beforeKeys.keys(), afterKids)),
    kidsNewWindow: listed(newWindow),
    kidsReplaced: listed(replaced),
    fields: fields.length > 0 ? fields : undefined,
    jtisRevoked: listed(difference(revokedAfter, revokedBefore)),
    jtisNoLongerRevoked: listed(difference(revokedBefore, revokedAfter)),
  });
  return Object.keys(change).length > 2 ? change : undefined;
}

function whole(tenant: Tenant, change: 'added' | 'removed'): TenantChange {
  return compact({
    oin: tenant.oin,
    change,
    enabled: tenant.enabled,
    [change === 'added' ? 'cidrsAdded' : 'cidrsRemoved']: listed(tenant.cidrTexts),
    [change === 'added' ? 'kidsAdded' : 'kidsRemoved']: listed(tenant.keys.list.map((k) => k.kid)),
  });
}

/**
 * Diffs two snapshots; `previous` undefined means the first load (every
 * tenant added). Yields to the event loop every `sliceMs`, so requests go on
 * being decided while a large whitelist is compared.
 */
export async function whitelistChanges(previous: Snapshot | undefined, next: Snapshot, sliceMs = 10): Promise<WhitelistChanges> {
  let sliceStart = performance.now();
  const pause = async (): Promise<void> => {
    if (performance.now() - sliceStart <= sliceMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    sliceStart = performance.now();
  };
  const tenants: TenantChange[] = [];
  let added = 0;
  let removed = 0;
  let changed = 0;
  let seen = 0;
  const note = (change: TenantChange): void => {
    if (tenants.length < MAX_LISTED_TENANTS) tenants.push(change);
  };
  // After an incremental change only the deltas can differ: no walk over 100k tenants.
  const candidates = previous === undefined ? undefined : keysThatMayDiffer(previous.tenants, next.tenants);
  const pairs: Iterable<[string, Tenant | undefined]> =
    candidates === undefined ? next.tenants : Array.from(candidates, (oin): [string, Tenant | undefined] => [oin, next.tenants.get(oin)]);
  for (const [oin, tenant] of pairs) {
    if (tenant === undefined) {
      // Only a candidate can be missing from next: it was removed.
      if (previous?.tenants.has(oin)) {
        removed++;
        note(whole(previous.tenants.get(oin)!, 'removed'));
      }
      continue;
    }
    const old = previous?.tenants.get(oin);
    if (old === undefined) {
      added++;
      if (tenants.length < MAX_LISTED_TENANTS) note(whole(tenant, 'added'));
      if ((++seen & 255) === 0) await pause();
      continue;
    }
    if ((++seen & 255) === 0) await pause();
    if (old === tenant || unchanged(old, tenant)) continue;
    // Computed even past the cap: the count must be right.
    const change = tenantChange(old, tenant);
    if (change === undefined) continue;
    changed++;
    note(change);
  }
  if (previous !== undefined && candidates === undefined) {
    for (const [oin, tenant] of previous.tenants) {
      if ((++seen & 255) === 0) await pause();
      if (next.tenants.has(oin)) continue;
      removed++;
      if (tenants.length < MAX_LISTED_TENANTS) note(whole(tenant, 'removed'));
    }
  }
  return {
    tenantsAdded: added,
    tenantsRemoved: removed,
    tenantsChanged: changed,
    tenants,
    moreTenants: added + removed + changed - tenants.length,
  };
}
