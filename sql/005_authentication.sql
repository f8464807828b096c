-- oingate whitelist store, schema version 005: per-tenant authentication
-- (contract §9). 'token' (the default) keeps every existing tenant as it was;
-- 'certificate' needs a verified client certificate carrying the tenant's
-- OIN and no token; 'certificate+token' needs both.
--
-- The CHECK is NOT VALID as in 003: the column is new and every row gets the
-- default, so nothing old can violate it; every INSERT and UPDATE is checked.

ALTER TABLE oingate.tenants
  ADD COLUMN IF NOT EXISTS authentication text NOT NULL DEFAULT 'token';

ALTER TABLE oingate.tenants
  ADD CONSTRAINT tenants_authentication_known CHECK (
    authentication IN ('token', 'certificate', 'certificate+token')
  ) NOT VALID;
