-- When a lost run's work really stopped, as its worker saw it: the run row is closed by
-- whoever takes the task back (the reaper, a restart), at that moment; the worker that lost
-- its lease stops its command on its own clock before that and reports the instant once it
-- reaches the database again. NULL when the worker never came back (killed).
ALTER TABLE task_runs ADD COLUMN work_ended_at timestamptz;

-- Runs lost to infrastructure (shutdown hand-back, a crashed or cut-off worker, an expired
-- lease) do not count against max_attempts: they count here, under worker.max_infra_retries.
-- attempt keeps numbering every run of the series; the attempts that count are
-- attempt - infra_retries. A restart (new series) starts both at 0.
ALTER TABLE tasks ADD COLUMN infra_retries integer NOT NULL DEFAULT 0 CHECK (infra_retries >= 0);
ALTER TABLE tasks DROP CONSTRAINT attempts_within_max;
ALTER TABLE tasks ADD CONSTRAINT attempts_within_max CHECK (attempt - infra_retries <= max_attempts);
