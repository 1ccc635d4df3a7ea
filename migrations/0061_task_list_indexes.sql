-- GET /tasks pages in (created_at DESC, id DESC) order. Filtered by one status or by name, the
-- indexes of 0001 could not give that order: tasks_status_idx ends at created_at (tasks created in
-- one statement share it, and every tie had to be read and sorted by id), tasks_name_idx has no
-- time at all (every task of the name was read and sorted: 200 ms a page with 100,000 queued).
-- The same prefixes serve what used them before (counts by status, names of a namespace), and
-- tasks keeps as many indexes (each one costs every claim and completion a write).
DROP INDEX IF EXISTS tasks_status_idx;
CREATE INDEX tasks_status_idx ON tasks (namespace, status, created_at DESC, id DESC);
DROP INDEX IF EXISTS tasks_name_idx;
CREATE INDEX tasks_name_idx ON tasks (namespace, name, created_at DESC, id DESC);
