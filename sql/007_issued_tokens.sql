-- oingate whitelist store, schema version 007: the record of tokens that
-- `oingate token` issued (contract §10), so that an operator can list them
-- and revoke one by its jti. The token itself is never stored: a row holds
-- only what identifies it. Recording a token changes nothing that is
-- enforced, so this table has no NOTIFY trigger: a row written here never
-- makes a gate reload.

CREATE TABLE IF NOT EXISTS oingate.issued_tokens (
  jti        text PRIMARY KEY,
  oin        text NOT NULL REFERENCES oingate.tenants (oin) ON DELETE CASCADE,
  kid        text NOT NULL,
  issued_at  timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  note       text
);

-- `oingate tokens --oin OIN` lists one tenant's tokens in the order they were issued.
CREATE INDEX IF NOT EXISTS issued_tokens_oin_issued_at ON oingate.issued_tokens (oin, issued_at);
