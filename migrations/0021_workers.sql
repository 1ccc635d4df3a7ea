-- The local worker processes sharing this database, each with the heartbeat that says it lives.
-- A process registers when its pool starts, beats every worker.presence_heartbeat_seconds and
-- removes its row on a clean stop. A row whose heartbeat is older than its own dead_after_seconds
-- belongs to a process that died (kill -9, a lost machine) or is cut off: another process takes
-- its running tasks back at once, instead of waiting for each task's lease to run out. The
-- process holds its commands to the same deadline on its own clock (renewed only by a heartbeat
-- that found its row), so they have stopped before that happens.
-- The cloud's Lambda workers do not register: their reserved concurrency is their limit, and
-- a lost invocation's task comes back at lease expiry.
CREATE TABLE workers (
  id                 text PRIMARY KEY,
  host               text NOT NULL,
  pid                integer NOT NULL,
  slots              integer NOT NULL CHECK (slots > 0),
  dead_after_seconds double precision NOT NULL CHECK (dead_after_seconds > 0),
  started_at         timestamptz NOT NULL DEFAULT now(),
  heartbeat_at       timestamptz NOT NULL DEFAULT now()
);
