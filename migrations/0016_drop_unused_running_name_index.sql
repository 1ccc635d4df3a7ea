-- tasks_running_name_idx (0002) served a per-type limit that counted running tasks by name. The
-- limit counts open runs now (task_runs, queue-sql.ts OPEN_RUNS), and nothing else asks for
-- running tasks by name, so the index only cost an insert on every claim.
DROP INDEX IF EXISTS tasks_running_name_idx;
