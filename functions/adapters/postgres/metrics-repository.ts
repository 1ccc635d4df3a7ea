import { UNFINISHED_STATUSES } from "../../core/tasks/task.js";
import type { GaugeSnapshot } from "../metrics/tme-metrics.js";
import type { Queryable } from "./database.js";

/**
 * Every database gauge in one round trip. The task counts are an index-only grouped count over
 * tasks_active_idx, which holds only the non-final tasks: its cost follows the work waiting or
 * running, not the history kept. The outbox and schedule figures read their partial indexes.
 */
const SNAPSHOT_SQL = `
  SELECT 'task' AS kind, namespace, name, status::text AS status, count(*)::float8 AS a, 0::float8 AS b
    FROM tasks WHERE status = ANY($1::task_status[])
    GROUP BY namespace, name, status
  UNION ALL
  SELECT 'outbox', NULL, NULL, NULL, count(*)::float8,
         coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
    FROM outbox WHERE published_at IS NULL
  UNION ALL
  SELECT 'schedules', NULL, NULL, NULL, count(*)::float8,
         coalesce(extract(epoch FROM now() - min(next_run_at)), 0)::float8
    FROM schedules WHERE enabled AND deleted_at IS NULL AND next_run_at < now()`;

interface SnapshotRow {
  kind: "task" | "outbox" | "schedules";
  namespace: string | null;
  name: string | null;
  status: string | null;
  a: number;
  b: number;
}

export async function readGaugeSnapshot(db: Queryable): Promise<GaugeSnapshot> {
  const { rows } = await db.query<SnapshotRow>(SNAPSHOT_SQL, [UNFINISHED_STATUSES]);
  const snapshot: GaugeSnapshot = {
    tasks: [],
    outboxBacklog: 0,
    outboxOldestAgeSeconds: 0,
    schedulesLate: 0,
    scheduleLatenessSeconds: 0,
  };
  for (const row of rows) {
    if (row.kind === "task") {
      snapshot.tasks.push({ namespace: row.namespace!, name: row.name!, status: row.status!, count: row.a });
    } else if (row.kind === "outbox") {
      snapshot.outboxBacklog = row.a;
      snapshot.outboxOldestAgeSeconds = Math.max(0, row.b);
    } else {
      snapshot.schedulesLate = row.a;
      snapshot.scheduleLatenessSeconds = Math.max(0, row.b);
    }
  }
  // Largest first, so the label budget admits the task names that matter most.
  snapshot.tasks.sort((x, y) => y.count - x.count);
  return snapshot;
}

/** Shares one read among the scrapes of `ttlMs` (Prometheus and a Grafana preview at once). */
export function cachedGaugeSnapshot(db: Queryable, ttlMs: number): () => Promise<GaugeSnapshot> {
  let cached: { at: number; value: Promise<GaugeSnapshot> } | undefined;
  return () => {
    const now = Date.now();
    if (!cached || now - cached.at >= ttlMs) {
      const value = readGaugeSnapshot(db);
      cached = { at: now, value };
      value.catch(() => {
        if (cached?.value === value) cached = undefined;
      });
    }
    return cached.value;
  };
}
