-- Schedules: what the scheduler needs beyond 0001's table.

-- The last firing, and firings that did not create a task (overlap "skip"), shown on the schedule
-- so a skip is visible without pretending the schedule fired.
ALTER TABLE schedules
  ADD COLUMN last_task_id        text,
  ADD COLUMN fired_count         integer NOT NULL DEFAULT 0 CHECK (fired_count >= 0),
  ADD COLUMN skipped_count       integer NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
  ADD COLUMN last_skipped_at     timestamptz,
  -- overlap "queue": the occurrence waiting for the unfinished run to end, and how many later
  -- occurrences were merged into it while it waited (it fires once, as after downtime)
  ADD COLUMN pending_occurrence_at timestamptz,
  ADD COLUMN pending_missed_count  integer NOT NULL DEFAULT 0 CHECK (pending_missed_count >= 0),
  -- why the last firing could not create its task (the template no longer resolves, ...)
  ADD COLUMN last_error          text,
  ADD CONSTRAINT pending_only_when_queueing CHECK (pending_occurrence_at IS NULL OR overlap = 'queue'),
  ADD CONSTRAINT timezone_only_for_cron CHECK (cron IS NOT NULL OR timezone = 'UTC');

-- The scheduler's second question after "what is due": which held occurrence may go now.
CREATE INDEX schedules_pending_idx ON schedules (pending_occurrence_at)
  WHERE pending_occurrence_at IS NOT NULL AND deleted_at IS NULL;

-- Overlap checks ask "does this schedule have an unfinished run?" on every firing; without this
-- index that walks every past task of the schedule.
CREATE INDEX tasks_schedule_unfinished_idx ON tasks (schedule_id)
  WHERE schedule_id IS NOT NULL AND status IN ('queued', 'paused', 'running', 'retrying');
