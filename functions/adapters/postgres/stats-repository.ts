import type { TaskStats, TaskStatsReader } from "../../core/tasks/task-stats.js";
import type { Queryable } from "./database.js";

/**
 * Counts by status read tasks_status_idx (namespace, status, ...) index-only. Throughput comes
 * from task_events by occurred_at, so it costs what the last hour produced, not the history
 * kept, and needs no new index on tasks (each index there slows every claim and finish).
 * Queue age counts only tasks whose run_at has come: a delayed task is not waiting.
 */
const STATS_SQL = `
  SELECT 'count' AS kind, status::text AS label, count(*)::int AS a, 0 AS b, 0 AS c, NULL::float8 AS age
    FROM tasks WHERE namespace = $1 GROUP BY status
  UNION ALL
  SELECT 'minute', to_char(date_trunc('minute', occurred_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:00"Z"'),
         count(*) FILTER (WHERE type = 'task.succeeded')::int,
         count(*) FILTER (WHERE type IN ('task.failed', 'task.timed_out'))::int,
         count(*) FILTER (WHERE type = 'task.cancelled')::int, NULL
    FROM task_events
    WHERE namespace = $1 AND occurred_at > now() - interval '1 hour'
      AND type IN ('task.succeeded', 'task.failed', 'task.timed_out', 'task.cancelled')
    GROUP BY 2
  UNION ALL
  SELECT 'queue', NULL, count(*)::int, 0, 0, extract(epoch FROM now() - min(run_at))::float8
    FROM tasks WHERE namespace = $1 AND status = 'queued' AND run_at <= now()`;

interface StatsRow {
  kind: "count" | "minute" | "queue";
  label: string | null;
  a: number;
  b: number;
  c: number;
  age: number | null;
}

export async function readTaskStats(db: Queryable, namespace: string, now: Date): Promise<TaskStats> {
  const { rows } = await db.query<StatsRow>(STATS_SQL, [namespace]);
  const counts: Record<string, number> = {};
  const minutes: TaskStats["finished_per_minute"] = [];
  let queueDepth = 0;
  let oldest: number | null = null;
  for (const row of rows) {
    if (row.kind === "count") counts[row.label!] = row.a;
    else if (row.kind === "minute")
      minutes.push({ minute: row.label!, succeeded: row.a, failed: row.b, cancelled: row.c });
    else {
      queueDepth = row.a;
      oldest = row.age === null ? null : Math.max(0, Math.round(row.age));
    }
  }
  minutes.sort((x, y) => (x.minute < y.minute ? -1 : 1));
  const succeeded = minutes.reduce((sum, m) => sum + m.succeeded, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  return {
    namespace,
    generated_at: now.toISOString(),
    counts,
    finished_per_minute: minutes,
    failure_rate_last_hour: succeeded + failed === 0 ? null : failed / (succeeded + failed),
    queue_depth: queueDepth,
    oldest_queued_age_seconds: oldest,
  };
}

export class PostgresTaskStatsReader implements TaskStatsReader {
  constructor(private readonly db: Queryable) {}

  read(namespace: string, now: Date): Promise<TaskStats> {
    return readTaskStats(this.db, namespace, now);
  }
}
