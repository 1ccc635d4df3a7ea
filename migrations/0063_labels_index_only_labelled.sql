-- Most tasks carry no labels, yet every write of a task's row (its create, its claim, its end:
-- three per task, none of them HOT) put it in the labels GIN index as an empty item. Only
-- labelled tasks are indexed now. A label filter also says labels <> '{}' (filterSql in
-- functions/adapters/postgres/task-control-repository.ts), so the planner can use this index:
-- a containment of a non-empty object implies it, but the planner does not prove that itself.
DROP INDEX tasks_labels_idx;
CREATE INDEX tasks_labels_idx ON tasks USING gin (labels jsonb_path_ops) WHERE labels <> '{}'::jsonb;
