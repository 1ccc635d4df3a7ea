-- The W3C trace context (a traceparent value) of the request that created a task, so its
-- attempts and webhook deliveries join that trace. NULL when tracing is off.
ALTER TABLE tasks
  ADD COLUMN trace_context text CHECK (trace_context IS NULL OR length(trace_context) <= 512);

-- The gauges of GET /metrics count non-final tasks by namespace, name and status on every scrape;
-- this partial index answers that with an index-only scan whose size follows the live work, not
-- the finished history (tasks_name_idx would read every task ever kept).
CREATE INDEX tasks_active_idx ON tasks (namespace, name, status)
  WHERE status IN ('queued', 'running', 'retrying', 'paused');
