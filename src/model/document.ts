/**
 * The whitelist as both stores describe it before validation: the shape of
 * the JSON file, and what the PostgreSQL store assembles from its rows.
 * Every field is `unknown` on input; `buildSnapshot` validates it.
 */
export interface KeyDocument {
  kid: string;
  alg: string;
  secret?: string;
  publicKey?: string;
  enabled?: boolean;
  /** ISO-8601 */
  notBefore?: string;
  /** ISO-8601 */
  expiresAt?: string;
}

export interface TenantDocument {
  oin: string;
  name?: string;
  enabled?: boolean;
  cidrs: string[];
  keys?: KeyDocument[];
  jwksUri?: string;
  /** Checked instead of OINGATE_ISSUER for this tenant's tokens (1..1024 characters). */
  issuer?: string;
  /** Checked instead of OINGATE_AUDIENCE for this tenant's tokens (1..1024 characters). */
  audience?: string;
}

export interface WhitelistDocument {
  tenants: TenantDocument[];
}
