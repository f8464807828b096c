-- oingate whitelist store, schema version 003: what SQL can check is checked
-- when a row is written, so the writer sees the error at once instead of a
-- refused reload later. oingate still validates everything at load.
--
-- NOT VALID: existing rows are not checked, so this migration never fails on
-- an old database; every INSERT, and every UPDATE of a row (old or new), is
-- checked. An old row that violates a rule still refuses the whitelist at
-- load, as before. Once such rows are fixed, an operator may run
--   ALTER TABLE oingate.tenant_keys VALIDATE CONSTRAINT <name>;
-- (and the same for tenant_cidrs) to have the database check them all.

ALTER TABLE oingate.tenant_keys
  ADD CONSTRAINT tenant_keys_alg_supported CHECK (
    alg IN ('HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512',
            'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512')
  ) NOT VALID,
  -- HS keys: a secret of at least 32 bytes and no public key; the others: a
  -- public key and no secret. Never both.
  ADD CONSTRAINT tenant_keys_material CHECK (
    CASE WHEN alg IN ('HS256', 'HS384', 'HS512')
      THEN secret IS NOT NULL AND octet_length(secret) >= 32 AND public_key IS NULL
      ELSE public_key IS NOT NULL AND secret IS NULL
    END
  ) NOT VALID,
  ADD CONSTRAINT tenant_keys_window CHECK (
    not_before IS NULL OR expires_at IS NULL OR expires_at > not_before
  ) NOT VALID;

-- A /0 range would admit every address.
ALTER TABLE oingate.tenant_cidrs
  ADD CONSTRAINT tenant_cidrs_prefix_above_zero CHECK (masklen(cidr) > 0) NOT VALID;
