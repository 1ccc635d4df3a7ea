-- The execution engine: each attempt carries its own lease, so a run row whose worker died is
-- closed by the reaper even when its task has moved on (cancelled, restarted) meanwhile.
ALTER TABLE task_runs ADD COLUMN lease_expires_at timestamptz;
CREATE INDEX task_runs_open_idx ON task_runs (lease_expires_at) WHERE finished_at IS NULL;
-- The per-type concurrency check counts running tasks of one name.
CREATE INDEX tasks_running_name_idx ON tasks (name) WHERE status = 'running';
-- The cloud sweeper asks whether a queued task was signalled recently.
CREATE INDEX outbox_dispatch_task_idx ON outbox ((payload ->> 'task_id'), created_at) WHERE type = 'queue.dispatch';
