-- TME's initial schema. Postgres is the source of truth; every owned row carries its
-- namespace. The schema refuses states the task state machine forbids.

CREATE TYPE task_status AS ENUM (
  'queued', 'paused', 'running', 'retrying', 'succeeded', 'failed', 'timed_out', 'cancelled'
);

CREATE TABLE tasks (
  id               text PRIMARY KEY,
  namespace        text NOT NULL DEFAULT 'default',
  name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description      text,
  command          text,
  handler          text NOT NULL,
  params           jsonb NOT NULL DEFAULT '{}',
  status           task_status NOT NULL DEFAULT 'queued',
  priority         smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 9),
  -- attempt within the current series (restart begins a new series at 0)
  attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  series           integer NOT NULL DEFAULT 0 CHECK (series >= 0),
  max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
  timeout_seconds  integer NOT NULL CHECK (timeout_seconds > 0),
  progress         jsonb,
  result           jsonb,
  error            text,
  schedule_id      text,
  labels           jsonb NOT NULL DEFAULT '{}',
  run_at           timestamptz NOT NULL DEFAULT now(),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  -- who holds a running task, and until when; the reaper takes back expired leases
  lease_owner      text,
  lease_expires_at timestamptz,
  CONSTRAINT running_has_lease CHECK (status <> 'running' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CONSTRAINT finished_has_time CHECK (
    status NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled') OR finished_at IS NOT NULL),
  CONSTRAINT attempts_within_max CHECK (attempt <= max_attempts)
);

-- The queue: claim picks the best queued task whose time has come.
CREATE INDEX tasks_queue_idx ON tasks (priority DESC, run_at, id) WHERE status = 'queued';
-- The reaper: running tasks by lease expiry.
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE status = 'running';
-- Retry timer: retrying tasks by due time.
CREATE INDEX tasks_retrying_idx ON tasks (run_at) WHERE status = 'retrying';
-- Lists, newest first, and their filters.
CREATE INDEX tasks_list_idx ON tasks (namespace, created_at DESC, id DESC);
CREATE INDEX tasks_status_idx ON tasks (namespace, status, created_at DESC);
CREATE INDEX tasks_name_idx ON tasks (namespace, name, status);
CREATE INDEX tasks_schedule_idx ON tasks (schedule_id, created_at DESC) WHERE schedule_id IS NOT NULL;
CREATE INDEX tasks_labels_idx ON tasks USING gin (labels jsonb_path_ops);

-- One row per attempt.
CREATE TABLE task_runs (
  id              bigserial PRIMARY KEY,
  task_id         text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  series          integer NOT NULL,
  attempt         integer NOT NULL CHECK (attempt >= 1),
  status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'lost')),
  worker_id       text NOT NULL,
  pid             integer,
  started_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  exit_code       integer,
  error           text,
  output_tail     text,
  output_truncated boolean NOT NULL DEFAULT false,
  UNIQUE (task_id, series, attempt)
);
CREATE INDEX task_runs_finished_idx ON task_runs (finished_at);

-- The lifecycle log of each task.
CREATE TABLE task_events (
  id          bigserial PRIMARY KEY,
  event_id    text NOT NULL UNIQUE,
  namespace   text NOT NULL,
  task_id     text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  type        text NOT NULL,
  data        jsonb NOT NULL DEFAULT '{}',
  occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_events_task_idx ON task_events (task_id, id);
CREATE INDEX task_events_time_idx ON task_events (occurred_at);

-- Transactional outbox: written with the change, relayed to the bus/queue afterwards.
CREATE TABLE outbox (
  id              bigserial PRIMARY KEY,
  event_id        text NOT NULL UNIQUE,
  namespace       text NOT NULL,
  type            text NOT NULL,
  payload         jsonb NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  published_at    timestamptz,
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text
);
CREATE INDEX outbox_pending_idx ON outbox (next_attempt_at, id) WHERE published_at IS NULL;

-- Task types (a task's name) that an operator has paused.
CREATE TABLE task_type_pauses (
  namespace  text NOT NULL,
  name       text NOT NULL,
  paused_at  timestamptz NOT NULL DEFAULT now(),
  paused_by  text,
  PRIMARY KEY (namespace, name)
);

CREATE TYPE overlap_policy AS ENUM ('skip', 'allow', 'queue');

CREATE TABLE schedules (
  id               text PRIMARY KEY,
  namespace        text NOT NULL DEFAULT 'default',
  name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  interval_seconds integer CHECK (interval_seconds >= 1),
  cron             text,
  timezone         text NOT NULL DEFAULT 'UTC',
  start_at         timestamptz,
  end_at           timestamptz,
  overlap          overlap_policy NOT NULL DEFAULT 'skip',
  enabled          boolean NOT NULL DEFAULT true,
  -- the task each firing creates: command, params, priority, timeout_seconds, max_attempts, labels
  task_template    jsonb NOT NULL DEFAULT '{}',
  next_run_at      timestamptz,
  last_fired_at    timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  deleted_at       timestamptz,
  CONSTRAINT one_timing CHECK ((interval_seconds IS NULL) <> (cron IS NULL)),
  CONSTRAINT end_after_start CHECK (end_at IS NULL OR start_at IS NULL OR end_at > start_at)
);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled AND deleted_at IS NULL;
CREATE INDEX schedules_list_idx ON schedules (namespace, created_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE subscriptions (
  id              text PRIMARY KEY,
  namespace       text NOT NULL DEFAULT 'default',
  event_types     text[] NOT NULL CHECK (cardinality(event_types) > 0),
  callback_url    text NOT NULL,
  format          text NOT NULL CHECK (format IN ('json', 'xml')),
  auth_type       text NOT NULL DEFAULT 'none' CHECK (auth_type IN ('none', 'bearer', 'basic', 'hmac')),
  -- credentials and signing secrets, encrypted by the application
  auth_secret     text,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  filter          jsonb NOT NULL DEFAULT '{}',
  enabled         boolean NOT NULL DEFAULT true,
  disabled_reason text,
  failing_since   timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  deleted_at      timestamptz
);
CREATE INDEX subscriptions_list_idx ON subscriptions (namespace, created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- One row per delivery attempt of one event to one subscription.
CREATE TABLE deliveries (
  id              text PRIMARY KEY,
  subscription_id text NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
  event_id        text NOT NULL,
  event_type      text NOT NULL,
  attempt         integer NOT NULL CHECK (attempt >= 1),
  status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'retrying', 'given_up')),
  response_status integer,
  latency_ms      integer,
  response_snippet text,
  error           text,
  next_attempt_at timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);
CREATE INDEX deliveries_subscription_idx ON deliveries (subscription_id, created_at DESC);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'retrying';
CREATE INDEX deliveries_event_idx ON deliveries (event_id, subscription_id);

-- API keys: only a SHA-256 of the secret is stored (keys are random, 256 bits, so a slow
-- password hash adds nothing); the prefix identifies a key in logs and lists.
CREATE TABLE api_keys (
  id           text PRIMARY KEY,
  name         text NOT NULL,
  namespace    text NOT NULL DEFAULT 'default',
  scopes       text[] NOT NULL,
  key_hash     bytea NOT NULL UNIQUE,
  prefix       text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz,
  CONSTRAINT known_scopes CHECK (scopes <@ ARRAY['tasks:read', 'tasks:write', 'schedules:write', 'events:write', 'admin']::text[])
);

-- Idempotency-Key on creating POSTs: the first response is kept for 24 h and replayed.
CREATE TABLE idempotency_keys (
  namespace     text NOT NULL,
  key           text NOT NULL,
  route         text NOT NULL,
  request_hash  text NOT NULL,
  response_status integer,
  response_body jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, route, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Who changed what, when, from where. Append-only: the trigger below refuses UPDATE and DELETE.
CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL,
  namespace   text NOT NULL,
  action      text NOT NULL,
  target      text,
  request_id  text,
  source_ip   text,
  details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_time_idx ON audit_log (occurred_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, occurred_at DESC);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
