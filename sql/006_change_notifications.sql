-- oingate whitelist store, schema version 006: change notifications name the
-- tenants a transaction touched, so oingate re-reads only those tenants
-- instead of the whole whitelist.
--
-- Payload on channel oingate_config:
--   oingate:1:["<oin>", ...]   every OIN (old and new) the transaction has
--                              touched so far, sorted; a later statement's
--                              notification includes the earlier ones
--   oingate:1:*                re-read everything (TRUNCATE, or more than
--                              300 OINs / 7000 bytes: a payload may hold
--                              at most 8000 bytes)
-- Only OINs travel, never row data: an OIN is a public identifier. Anything
-- else on the channel (anyone may NOTIFY) makes oingate re-read everything.
--
-- Statement-level triggers with transition tables: one notification per
-- statement, however many rows it changed. Deletes by ON DELETE CASCADE fire
-- the child tables' triggers too. The OINs touched so far are kept in a
-- transaction-local setting, so the last notification of a transaction names
-- all of them and the transaction is re-read as a whole.

DROP TRIGGER tenants_notify_config ON oingate.tenants;
DROP TRIGGER tenant_cidrs_notify_config ON oingate.tenant_cidrs;
DROP TRIGGER tenant_keys_notify_config ON oingate.tenant_keys;
DROP FUNCTION oingate.notify_config();

CREATE FUNCTION oingate.notify_oins(touched text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  so_far text := coalesce(current_setting('oingate.touched_oins', true), '');
  oins text[];
  payload text;
BEGIN
  IF so_far = '*' THEN
    RETURN; -- the marker was sent already
  END IF;
  IF so_far <> '' THEN
    touched := touched || ARRAY(SELECT json_array_elements_text(so_far::json));
  END IF;
  oins := ARRAY(SELECT DISTINCT o FROM unnest(touched) AS o WHERE o IS NOT NULL ORDER BY 1);
  IF cardinality(oins) = 0 THEN
    RETURN; -- a statement that changed no row
  END IF;
  payload := to_json(oins)::text;
  IF cardinality(oins) > 300 OR octet_length(payload) > 7000 THEN
    PERFORM set_config('oingate.touched_oins', '*', true);
    PERFORM pg_notify('oingate_config', 'oingate:1:*');
  ELSE
    PERFORM set_config('oingate.touched_oins', payload, true);
    PERFORM pg_notify('oingate_config', 'oingate:1:' || payload);
  END IF;
END;
$$;

-- One function for every event: plpgsql plans a query when it first runs
-- it, so each branch names only the transition tables its event has.
CREATE FUNCTION oingate.notify_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM oingate.notify_oins(ARRAY(SELECT oin FROM new_rows));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM oingate.notify_oins(ARRAY(SELECT oin FROM old_rows UNION SELECT oin FROM new_rows));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM oingate.notify_oins(ARRAY(SELECT oin FROM old_rows));
  ELSE -- TRUNCATE
    PERFORM set_config('oingate.touched_oins', '*', true);
    PERFORM pg_notify('oingate_config', 'oingate:1:*');
  END IF;
  RETURN NULL;
END;
$$;

-- The same four triggers on each of the three tables.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tenants', 'tenant_cidrs', 'tenant_keys'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON oingate.%I REFERENCING NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_changed()', t || '_notify_inserted', t);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON oingate.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_changed()', t || '_notify_updated', t);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON oingate.%I REFERENCING OLD TABLE AS old_rows
      FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_changed()', t || '_notify_deleted', t);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON oingate.%I
      FOR EACH STATEMENT EXECUTE FUNCTION oingate.notify_changed()', t || '_notify_truncated', t);
  END LOOP;
END;
$$;
