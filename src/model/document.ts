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
  /** Contract §11; `burst` defaults to `perSecond`. */
  rateLimit?: { perSecond?: number; burst?: number };
  /** 'token' (default), 'certificate' or 'certificate+token' (contract §9). */
  authentication?: string;
  /** ISO-8601: tokens with an `iat` not after it, or without one, are refused (contract §10). */
  tokensIssuedAfter?: string;
}

/** One revoked token of one tenant (contract §10). */
export interface RevokedTokenDocument {
  jti: string;
  oin: string;
  /** ISO-8601: when the token expires; past it (and the clock tolerance) the revocation is forgotten. */
  expiresAt?: string;
  reason?: string;
}

export interface WhitelistDocument {
  tenants: TenantDocument[];
  revokedTokens?: RevokedTokenDocument[];
}
