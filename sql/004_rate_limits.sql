-- oingate whitelist store, schema version 004: per-tenant rate limits
-- (contract §11). Both NULL: no limit. rate_limit_burst NULL with a rate:
-- the burst is the rate. Nullable, no default: adding them rewrites no rows
-- and leaves every existing tenant unlimited.

ALTER TABLE oingate.tenants
  ADD COLUMN rate_limit_per_second integer,
  ADD COLUMN rate_limit_burst      integer;

-- Checked when a row is written, as in 003; oingate validates again at load
-- (and refuses the whitelist on a bad value). NOT VALID for the same reason
-- as 003: the migration never fails on an old database and takes no long
-- lock; the new columns are NULL everywhere, so there is nothing to check.
-- The bounds are those oingate accepts (1 to 1000000).
ALTER TABLE oingate.tenants
  ADD CONSTRAINT tenants_rate_limit_per_second_range CHECK (
    rate_limit_per_second IS NULL OR rate_limit_per_second BETWEEN 1 AND 1000000
  ) NOT VALID,
  ADD CONSTRAINT tenants_rate_limit_burst_range CHECK (
    rate_limit_burst IS NULL OR rate_limit_burst BETWEEN 1 AND 1000000
  ) NOT VALID,
  -- A burst without a rate would be a limit nobody can read.
  ADD CONSTRAINT tenants_rate_limit_burst_needs_rate CHECK (
    rate_limit_burst IS NULL OR rate_limit_per_second IS NOT NULL
  ) NOT VALID;
