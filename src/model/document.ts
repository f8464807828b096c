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
  /** 'token' (default), 'certificate' or 'certificate+token' (contract §9). */
  authentication?: string;
}

export interface WhitelistDocument {
  tenants: TenantDocument[];
}
