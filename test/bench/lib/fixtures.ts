/**
 * Bench data: generated tenants (OIN, two CIDRs, one HS256 key each), the
 * 400-byte JSON request body and valid tokens.
 */
import jwt from 'jsonwebtoken';
import { randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';

export const BODY_BYTES = 400;

export interface BenchTenant {
  readonly oin: string;
  readonly name: string;
  readonly cidrs: string[];
  readonly keys: Array<{ kid: string; alg: 'HS256'; secret: string }>;
}

/** 20 digits, unique per index. */
export function oinFor(index: number): string {
  return `9${String(index).padStart(19, '0')}`;
}

/** Two octets of an IPv4 /24 and one IPv4 address inside it, unique per index up to 2^24. */
function v4Parts(index: number): [number, number, number] {
  return [10 + Math.floor(index / 65536), (index >> 8) & 255, index & 255];
}

/** An address inside the tenant's IPv4 range, e.g. for X-Forwarded-For or as a peer. */
export function clientIpFor(index: number): string {
  const [a, b, c] = v4Parts(index);
  return `${a}.${b}.${c}.7`;
}

/**
 * Tenant `index`: 10.x.y.0/24 (11.x.y.0/24 past 65,536 tenants) and a
 * 2001:db8:g:h::/64, both canonical; one HS256 key with a 32-character secret.
 * `loopback` swaps the IPv4 range for 127.0.0.0/8 so a client on this machine
 * can call as that tenant without X-Forwarded-For.
 */
export function makeTenant(index: number, options: { loopback?: boolean } = {}): BenchTenant {
  const [a, b, c] = v4Parts(index);
  // Both groups non-zero, so the canonical text is exactly this.
  const g = (1 + (index >> 15)).toString(16);
  const h = (0x8000 | (index & 0x7fff)).toString(16);
  return {
    oin: oinFor(index),
    name: `bench tenant ${index}`,
    cidrs: [options.loopback ? '127.0.0.0/8' : `${a}.${b}.${c}.0/24`, `2001:db8:${g}:${h}::/64`],
    keys: [{ kid: `k${index}`, alg: 'HS256', secret: randomBytes(24).toString('base64url') }],
  };
}

export function makeTenants(count: number, loopbackIndexes: ReadonlySet<number> = new Set()): BenchTenant[] {
  const tenants: BenchTenant[] = new Array(count);
  for (let i = 0; i < count; i++) tenants[i] = makeTenant(i, { loopback: loopbackIndexes.has(i) });
  return tenants;
}

/** Compact JSON, one tenant per line (a 100k file stays ~20 MB). */
export function whitelistText(tenants: readonly BenchTenant[]): string {
  return `{"tenants":[\n${tenants.map((t) => JSON.stringify(t)).join(',\n')}\n]}\n`;
}

/** Writes the whitelist atomically (temp file + rename), as an editor or ConfigMap would. */
export async function writeWhitelist(file: string, tenants: readonly BenchTenant[]): Promise<number> {
  const text = whitelistText(tenants);
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
  return Buffer.byteLength(text);
}

/** A JSON body of exactly `size` bytes carrying the OIN at top level. */
export function bodyFor(oin: string, size = BODY_BYTES): string {
  const base = { oin, type: 'bench.request', reference: 'REF-000000001', items: [1, 2, 3], padding: '' };
  const empty = JSON.stringify(base);
  const fill = size - Buffer.byteLength(empty);
  if (fill < 0) throw new Error(`body of ${size} bytes is too small for the OIN`);
  const body = JSON.stringify({ ...base, padding: 'x'.repeat(fill) });
  if (Buffer.byteLength(body) !== size) throw new Error('body size mismatch');
  return body;
}

/** A valid HS256 token for the tenant: kid set, oin claim, iat now, 2 h lifetime. */
export function tokenFor(tenant: BenchTenant, lifetimeSeconds = 7200, claims: Record<string, unknown> = {}): string {
  const key = tenant.keys[0];
  if (key === undefined) throw new Error(`tenant ${tenant.oin} has no key`);
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ oin: tenant.oin, sub: 'bench-client', iat: now, exp: now + lifetimeSeconds, ...claims }, key.secret, {
    algorithm: 'HS256',
    keyid: key.kid,
  });
}

/** Deterministic pseudo-random integers (mulberry32), so runs pick comparable tenants. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
