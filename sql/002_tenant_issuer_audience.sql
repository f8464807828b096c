-- oingate whitelist store, schema version 002: a tenant's own issuer and
-- audience, checked instead of OINGATE_ISSUER / OINGATE_AUDIENCE for its
-- tokens. Nullable, no default: existing rows keep the global settings.
-- Adding a nullable column without a default rewrites no rows.

ALTER TABLE oingate.tenants
  ADD COLUMN issuer   text,
  ADD COLUMN audience text;
