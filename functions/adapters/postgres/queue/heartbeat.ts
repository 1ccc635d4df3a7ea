import { newEvent } from "../../../core/events/event.js";
import { type Task, type TaskProgress, toTaskView } from "../../../core/tasks/task.js";
import type { HeartbeatResult, Lease } from "../../../core/tasks/task-queue.js";
import type { Db, Queryable } from "../database.js";
import { writeTaskEvents } from "../event-writer.js";
import { TASK_COLUMNS } from "../task-repository.js";
import { FENCE, sanitizeJson } from "./queue-sql.js";

/** True when the API cancelled this very attempt (same series) while it ran. */
export async function cancelledUnderUs(tx: Queryable, lease: Lease): Promise<boolean> {
  const { rows } = await tx.query<{ status: string; series: number }>(
    `SELECT status, series FROM tasks WHERE id = $1`,
    [lease.taskId],
  );
  return rows[0]?.status === "cancelled" && rows[0].series === lease.series;
}

/**
 * Extends an attempt's lease (task and run row in one statement); tells whether the attempt is
 * still this worker's, was cancelled by the API, or was taken over.
 */
export function heartbeat(db: Db, lease: Lease, leaseSeconds: number): Promise<HeartbeatResult> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<{ id: string }>(
      `WITH renewed AS (
         UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $5) WHERE ${FENCE} RETURNING id),
       runs AS (
         UPDATE task_runs SET lease_expires_at = now() + make_interval(secs => $5)
         WHERE task_id IN (SELECT id FROM renewed) AND series = $3 AND attempt = $4 AND finished_at IS NULL)
       SELECT id FROM renewed`,
      [lease.taskId, lease.workerId, lease.series, lease.attempt, leaseSeconds],
    );
    if (rows.length === 1) return "ok";
    return (await cancelledUnderUs(tx, lease)) ? "cancelled" : "lost";
  });
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
      const event = newEvent(
        "task.progress",
        task.namespace,
        { task: toTaskView(task), progress: value },
        now(),
      );
      await writeTaskEvents(tx, [{ event, taskId: task.id }]);
    }
    return true;
  });
}
