/**
 * A whitelist file whose parse needs much more memory than its reading
 * thread holds of a plain file: one tenant of `ranges` ranges, which the
 * parser must hold at once (plain tenants are dropped one by one).
 */
export function oneHugeTenantText(ranges = 500_000): string {
  const cidrs = Array.from({ length: ranges }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
  return JSON.stringify({ tenants: [{ oin: '00000001000000000009', name: 'huge', cidrs, keys: [] }] });
}
