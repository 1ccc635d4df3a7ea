-- The audit log as a hash chain. Each row holds the hash of the row before it (prev_hash) and
-- its own hash over a canonical encoding of its fields (audit_row_digest), in the order of seq.
-- Appends go through audit_append(), which takes the one-row chain head FOR UPDATE, so
-- concurrent appends from any number of processes queue up and the chain never forks.
ALTER TABLE audit_log ALTER COLUMN actor DROP NOT NULL;
ALTER TABLE audit_log
  ADD COLUMN seq bigint,
  ADD COLUMN actor_name text,
  ADD COLUMN outcome text NOT NULL DEFAULT 'ok',
  ADD COLUMN status integer,
  ADD COLUMN prev_hash bytea,
  ADD COLUMN hash bytea;

-- The canonical encoding: a JSON array of the fields in a fixed order (jsonb's text form is
-- deterministic), the time in integer microseconds, prefixed by the previous row's hash.
CREATE FUNCTION audit_row_digest(
  prev bytea, seq bigint, occurred_at timestamptz, actor text, actor_name text, namespace text,
  action text, target text, request_id text, source_ip text, outcome text, status integer,
  details jsonb
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT sha256(coalesce(prev, ''::bytea) || convert_to(jsonb_build_array(
    seq, (extract(epoch FROM occurred_at) * 1000000)::bigint, actor, actor_name, namespace, action,
    target, request_id, source_ip, outcome, status, details)::text, 'UTF8'))
$$;

CREATE TABLE audit_chain_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seq       bigint NOT NULL,
  hash      bytea
);

-- Rows written before the chain existed are chained now, in the order they were written.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;
DO $$
DECLARE r record; n bigint := 0; h bytea := NULL;
BEGIN
  FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
    n := n + 1;
    UPDATE audit_log SET seq = n, prev_hash = h,
      hash = audit_row_digest(h, n, r.occurred_at, r.actor, r.actor_name, r.namespace, r.action,
                              r.target, r.request_id, r.source_ip, r.outcome, r.status, r.details)
      WHERE id = r.id RETURNING hash INTO h;
  END LOOP;
  INSERT INTO audit_chain_head (seq, hash) VALUES (n, h);
END $$;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update;
ALTER TABLE audit_log ALTER COLUMN seq SET NOT NULL, ALTER COLUMN hash SET NOT NULL;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_seq_unique UNIQUE (seq);
CREATE INDEX audit_log_action_idx ON audit_log (action, occurred_at DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target, occurred_at DESC);

-- Segments moved out by retention: rows up to through_seq were exported to a file (its SHA-256
-- kept here) and may then be deleted; the remaining chain starts from last_hash.
CREATE TABLE audit_archives (
  id          bigserial PRIMARY KEY,
  archived_at timestamptz NOT NULL DEFAULT now(),
  through_seq bigint NOT NULL,
  last_hash   bytea NOT NULL,
  row_count   bigint NOT NULL,
  location    text NOT NULL,
  file_sha256 text NOT NULL
);

-- Append-only, now with one exception: a row inside an archived segment may be deleted (it is
-- kept in the archive file). TRUNCATE is refused by the statement-level trigger of 0001.
CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Nested IFs: OLD has no seq outside audit_log, and no row at all in a TRUNCATE trigger.
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log' THEN
    IF OLD.seq <= (SELECT coalesce(max(through_seq), 0) FROM audit_archives) THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$;
CREATE TRIGGER audit_archives_no_update BEFORE UPDATE OR DELETE ON audit_archives
  FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_archives_no_truncate BEFORE TRUNCATE ON audit_archives
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- Appends a JSON array of entries, chained, in one statement (one round trip per batch).
CREATE FUNCTION audit_append(entries jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  head_seq bigint; head_hash bytea; e jsonb; at timestamptz; digest bytea;
BEGIN
  SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_head FOR UPDATE;
  FOR e IN SELECT value FROM jsonb_array_elements(entries) LOOP
    head_seq := head_seq + 1;
    at := clock_timestamp();
    digest := audit_row_digest(head_hash, head_seq, at, e->>'actor', e->>'actor_name',
      e->>'namespace', e->>'action', e->>'target', e->>'request_id', e->>'source_ip',
      coalesce(e->>'outcome', 'ok'), (e->>'status')::integer, coalesce(e->'details', '{}'::jsonb));
    INSERT INTO audit_log (seq, occurred_at, actor, actor_name, namespace, action, target, request_id,
                           source_ip, outcome, status, details, prev_hash, hash)
    VALUES (head_seq, at, e->>'actor', e->>'actor_name', e->>'namespace', e->>'action', e->>'target',
            e->>'request_id', e->>'source_ip', coalesce(e->>'outcome', 'ok'), (e->>'status')::integer,
            coalesce(e->'details', '{}'::jsonb), head_hash, digest);
    head_hash := digest;
  END LOOP;
  UPDATE audit_chain_head SET seq = head_seq, hash = head_hash;
  RETURN head_seq;
END $$;
