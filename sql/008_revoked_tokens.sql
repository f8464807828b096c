-- oingate whitelist store, schema version 008: revoking tokens (contract §10).
--
-- oingate.revoked_tokens: one row per revoked token of one tenant. Rows are
-- plain data: any SQL client may insert one, and the gates enforce it like
-- one written by `oingate revoke`. No foreign key to oingate.tenants on
-- purpose: deleting a tenant must not silently drop its revocations, which
-- would let its old tokens back in if the tenant were created again. A row
-- whose tenant does not exist is kept and has no effect until it does.
--
-- oingate.tenants.tokens_issued_after: every token of the tenant whose iat
-- is not after this moment, or that has no iat, is refused.
--
-- Both ride on the change notifications of 006: a revocation names its
-- tenant's OIN, so every gate re-reads that one tenant, its revocations
-- with it.

CREATE TABLE IF NOT EXISTS oingate.revoked_tokens (
  oin        text NOT NULL,
  jti        text NOT NULL,
  revoked_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  reason     text,
  PRIMARY KEY (oin, jti),
  -- The bounds oingate checks at load, checked at write so the writer sees them.
  CONSTRAINT revoked_tokens_jti_length CHECK (char_length(jti) BETWEEN 1 AND 1024),
  CONSTRAINT revoked_tokens_reason_length CHECK (reason IS NULL OR char_length(reason) BETWEEN 1 AND 1024),
  CONSTRAINT revoked_tokens_expires_finite CHECK (expires_at IS NULL OR isfinite(expires_at))
);

-- `oingate revoke --prune` deletes the rows whose token expired.
CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at ON oingate.revoked_tokens (expires_at);

ALTER TABLE oingate.tenants ADD COLUMN IF NOT EXISTS tokens_issued_after timestamptz;
ALTER TABLE oingate.tenants
  ADD CONSTRAINT tenants_tokens_issued_after_finite CHECK (tokens_issued_after IS NULL OR isfinite(tokens_issued_after)) NOT VALID;

-- The same four triggers as on the whitelist's other tables (006).
CREATE TRIGGER revoked_tokens_notify_inserted AFTER INSERT ON oingate.revoked_tokens
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_changed();
CREATE TRIGGER revoked_tokens_notify_updated AFTER UPDATE ON oingate.revoked_tokens
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_changed();
CREATE TRIGGER revoked_tokens_notify_deleted AFTER DELETE ON oingate.revoked_tokens
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_changed();
CREATE TRIGGER revoked_tokens_notify_truncated AFTER TRUNCATE ON oingate.revoked_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_changed();
