-- Claims take turns between namespaces (fairLine in functions/adapters/postgres/queue/queue-sql.ts):
-- every walk of the line (claims, waiting_reason places, the next task of a limited type, the
-- cloud's re-signalling of stranded tasks) walks the line of each namespace that has queued
-- tasks, in claim order, and merges them. This index serves those walks and the loose scan that
-- finds the namespaces; it replaces tasks_queue_idx (the one line of every namespace), so a
-- create still adds one entry to a queue index, not two. Only queued rows are in it: a claim's
-- new row version (running) adds no entry.
CREATE INDEX tasks_queue_namespace_idx ON tasks (namespace, priority DESC, run_at, id) WHERE status = 'queued';
DROP INDEX tasks_queue_idx;
