import { progressEvent } from "../../../core/tasks/attempt-plan.js";
import type { Task, TaskProgress } from "../../../core/tasks/task.js";
import type { HeartbeatResult, Lease } from "../../../core/tasks/task-queue.js";
import type { Db, Queryable } from "../database.js";
import { writeTaskEvents } from "../event-writer.js";
import { TASK_COLUMNS } from "../task-repository.js";
import { FENCE, sanitizeJson } from "./queue-sql.js";

/**
 * Extends many attempts' leases in one statement (task and run row); tells, per lease, whether
 * the attempt is still this worker's, was cancelled by the API (same series), or was taken over.
 * The running attempts of a pool beat one by one; the claimed tasks waiting in its local queue
 * beat together.
 */
export async function renewLeases(
  db: Queryable,
  leases: readonly Lease[],
  leaseSeconds: number,
): Promise<HeartbeatResult[]> {
  if (leases.length === 0) return [];
  const { rows } = await db.query<{ ord: number; renewed: boolean; cancelled: boolean }>(
    `WITH l AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[]) WITH ORDINALITY
         AS l(id, worker_id, series, attempt, ord)),
     renewed AS (
       UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => $5)
       FROM l WHERE t.id = l.id AND t.status = 'running' AND t.lease_owner = l.worker_id
         AND t.series = l.series AND t.attempt = l.attempt
       RETURNING t.id, t.series, t.attempt),
     runs AS (
       UPDATE task_runs r SET lease_expires_at = now() + make_interval(secs => $5)
       FROM renewed WHERE r.task_id = renewed.id AND r.series = renewed.series AND r.attempt = renewed.attempt
         AND r.finished_at IS NULL)
     SELECT l.ord::int AS ord, renewed.id IS NOT NULL AS renewed,
       COALESCE(t.status = 'cancelled' AND t.series = l.series, false) AS cancelled
     FROM l LEFT JOIN renewed ON renewed.id = l.id LEFT JOIN tasks t ON t.id = l.id`,
    [
      leases.map((l) => l.taskId),
      leases.map((l) => l.workerId),
      leases.map((l) => l.series),
      leases.map((l) => l.attempt),
      leaseSeconds,
    ],
  );
  const results: HeartbeatResult[] = leases.map(() => "lost");
  for (const row of rows) results[row.ord - 1] = row.renewed ? "ok" : row.cancelled ? "cancelled" : "lost";
  return results;
}

/** Stores progress (fenced) and, when `emitEvent`, a task.progress event. False when the lease is gone. */
export function progress(
  db: Db,
  lease: Lease,
  value: TaskProgress,
  emitEvent: boolean,
  now: () => Date,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<Task>(
      `UPDATE tasks SET progress = $5, updated_at = now() WHERE ${FENCE} RETURNING ${TASK_COLUMNS}`,
      [lease.taskId, lease.workerId, lease.series, lease.attempt, sanitizeJson(value)],
    );
    const task = rows[0];
    if (!task) return false;
    if (emitEvent) {
      const event = progressEvent(task, value, now());
      await writeTaskEvents(tx, [{ event, taskId: task.id }]);
    }
    return true;
  });
}
