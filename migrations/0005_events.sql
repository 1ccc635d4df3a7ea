-- Events, webhooks and alerts (issue 5).

-- Events as fanned out to subscribers: the body of every retry and redelivery is rebuilt from
-- here, so the outbox can be cleaned up independently.
CREATE TABLE webhook_events (
  event_id    text PRIMARY KEY,
  namespace   text NOT NULL,
  type        text NOT NULL,
  payload     jsonb NOT NULL,
  occurred_at timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

ALTER TABLE subscriptions
  -- not secret, shown in the subscription (the password lives sealed in auth_secret)
  ADD COLUMN auth_username  text,
  ADD COLUMN disabled_cause text CHECK (disabled_cause IN ('manual', 'gone', 'failing')),
  ADD COLUMN disabled_at    timestamptz,
  ADD CONSTRAINT disabled_has_cause CHECK (enabled OR disabled_cause IS NOT NULL);
CREATE INDEX subscriptions_active_idx ON subscriptions (namespace) WHERE enabled AND deleted_at IS NULL;

-- deliveries keeps one row per attempt. A "pending" row is an attempt still to make (due at
-- next_attempt_at); once made it becomes succeeded, retrying (failed, the next attempt is a new
-- pending row), failed (failed for good: 410, disabled endpoint, refused address) or given_up
-- (the retry window is spent).
ALTER TABLE deliveries
  ADD COLUMN namespace        text NOT NULL DEFAULT 'default',
  -- insertion order, the tie-break of occurred_at when ordering a task's events
  ADD COLUMN seq              bigserial,
  ADD COLUMN order_key        text,
  ADD COLUMN occurred_at      timestamptz NOT NULL DEFAULT now(),
  -- attempts within one delivery (a redelivery starts a new one; attempt keeps counting)
  ADD COLUMN chain_attempt    integer NOT NULL DEFAULT 1 CHECK (chain_attempt >= 1),
  ADD COLUMN chain_started_at timestamptz,
  ADD COLUMN trigger          text NOT NULL DEFAULT 'event' CHECK (trigger IN ('event', 'retry', 'redeliver', 'test')),
  -- a worker performing this attempt holds it until then; an expired claim means it died
  ADD COLUMN claimed_by       text,
  ADD COLUMN claimed_until    timestamptz,
  ADD COLUMN started_at       timestamptz,
  ADD CONSTRAINT finished_attempt_has_time CHECK (status = 'pending' OR finished_at IS NOT NULL);
-- At-least-once buses deliver an event twice: the second fan-out inserts nothing.
CREATE UNIQUE INDEX deliveries_attempt_uq ON deliveries (subscription_id, event_id, attempt);
CREATE INDEX deliveries_pending_idx ON deliveries (next_attempt_at, subscription_id) WHERE status = 'pending';
CREATE INDEX deliveries_order_idx ON deliveries (subscription_id, order_key, occurred_at, seq) WHERE status = 'pending';
CREATE INDEX deliveries_status_idx ON deliveries (subscription_id, status, created_at DESC);

-- Alerts: one open row per (rule, subject) while the condition lasts; resolved rows stay as history.
CREATE TABLE alerts (
  id          text PRIMARY KEY,
  namespace   text NOT NULL,
  rule        text NOT NULL,
  subject     text NOT NULL,
  status      text NOT NULL CHECK (status IN ('open', 'resolved')),
  message     text NOT NULL,
  details     jsonb NOT NULL DEFAULT '{}',
  raised_at   timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz,
  CONSTRAINT resolved_has_time CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE UNIQUE INDEX alerts_open_uq ON alerts (rule, subject) WHERE status = 'open';
CREATE INDEX alerts_list_idx ON alerts (namespace, raised_at DESC, id DESC);
