-- The relay now deletes a row once it is published (outbox-repository.ts): rows published
-- before this migration are forgotten the same way. Nothing reads them: a task's history is
-- task_events, a delivery's is deliveries.
DELETE FROM outbox WHERE published_at IS NOT NULL;
