-- oingate whitelist store, schema version 001.
--
-- Applied by `oingate migrate`, which runs every file in sql/ in name order,
-- each in its own transaction, and records it in oingate.schema_migrations.
-- Do not add BEGIN/COMMIT here.

CREATE SCHEMA IF NOT EXISTS oingate;

CREATE TABLE IF NOT EXISTS oingate.schema_migrations (
  version    text PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE oingate.tenants (
  oin      text PRIMARY KEY,
  name     text NOT NULL DEFAULT '',
  enabled  boolean NOT NULL DEFAULT true,
  jwks_uri text
);

CREATE TABLE oingate.tenant_cidrs (
  oin  text REFERENCES oingate.tenants ON DELETE CASCADE,
  cidr cidr NOT NULL,
  PRIMARY KEY (oin, cidr)
);

CREATE TABLE oingate.tenant_keys (
  oin         text REFERENCES oingate.tenants ON DELETE CASCADE,
  kid         text NOT NULL,
  alg         text NOT NULL,
  secret      text,
  public_key  text,
  enabled     boolean NOT NULL DEFAULT true,
  not_before  timestamptz,
  expires_at  timestamptz,
  PRIMARY KEY (oin, kid)
);

-- Change signal. oingate LISTENs on oingate_config and reloads all three
-- tables on every notification. The payload is deliberately empty: it never
-- carries row data (secrets), and identical notifications raised within one
-- transaction are folded into one by PostgreSQL.
CREATE FUNCTION oingate.notify_config() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('oingate_config', '');
  RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_notify_config
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oingate.tenants
  FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_config();

CREATE TRIGGER tenant_cidrs_notify_config
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oingate.tenant_cidrs
  FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_config();

CREATE TRIGGER tenant_keys_notify_config
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oingate.tenant_keys
  FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_config();
