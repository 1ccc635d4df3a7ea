import { newEvent } from "../../../core/events/event.js";
import { storableText } from "../../../core/plugins/output-tail.js";
import type { TaskOutcome } from "../../../core/plugins/plugin.js";
import { type Task, toTaskView } from "../../../core/tasks/task.js";
import type { Lease } from "../../../core/tasks/task-queue.js";
import type { Db, Queryable } from "../database.js";
import { type QueueSignalRoute, writeQueueSignals, writeTaskEvents } from "../event-writer.js";
import { TASK_COLUMNS } from "../task-repository.js";
import type { KnownLimits } from "./claim.js";
import { signalNextOfLimitedTypes } from "./complete.js";
import { FENCE } from "./queue-sql.js";

export interface ReapOptions {
  outputTailBytes: number;
  /** Runs of one task lost to infrastructure before it fails anyway (worker.max_infra_retries). */
  maxInfraRetries: number;
  limits: KnownLimits;
  now: () => Date;
  queueSignals: QueueSignalRoute;
}

/**
 * running -> queued, the run row ends 'lost'. The run was lost to infrastructure (its worker
 * shut down, crashed, or lost the database), not to the task: it does not count against
 * max_attempts but against worker.max_infra_retries, and a task past that cap fails (one
 * that kills its worker every time must not loop forever). The event is task.retrying (it
 * will run again, now) or task.failed, with `infra_retries` saying which budget it spent.
 */
async function takeBack(
  tx: Queryable,
  taskId: string,
  reason: string,
  options: ReapOptions,
  run: TaskOutcome = {},
): Promise<"queued" | "failed"> {
  const { rows } = await tx.query<Task>(
    `UPDATE tasks SET infra_retries = infra_retries + 1,
       status = CASE WHEN infra_retries + 1 > $3 THEN 'failed' ELSE 'queued' END::task_status,
       error = CASE WHEN infra_retries + 1 > $3
         THEN $2 || ' (lost ' || (infra_retries + 1) || ' runs to infrastructure; worker.max_infra_retries is ' || $3 || ')'
         ELSE $2 END,
       updated_at = now(), run_at = now(),
       finished_at = CASE WHEN infra_retries + 1 > $3 THEN now() END,
       lease_owner = NULL, lease_expires_at = NULL
     WHERE id = $1 AND status = 'running' RETURNING ${TASK_COLUMNS}`,
    [taskId, reason, options.maxInfraRetries],
  );
  const task = rows[0]!;
  await tx.query(
    `UPDATE task_runs SET status = 'lost', error = $4, finished_at = clock_timestamp(), exit_code = $5, output_tail = $6,
       output_truncated = $7, pid = COALESCE($8, pid)
     WHERE task_id = $1 AND series = $2 AND attempt = $3 AND finished_at IS NULL`,
    [
      task.id,
      task.series,
      task.attempt,
      reason,
      run.exitCode ?? null,
      run.outputTail === undefined ? null : storableText(run.outputTail, options.outputTailBytes),
      run.outputTruncated ?? false,
      run.pid ?? null,
    ],
  );
  await signalNextOfLimitedTypes(tx, [task.name], options);
  const infra = { infra_retries: task.infra_retries, max_infra_retries: options.maxInfraRetries };
  const view = toTaskView(task);
  if (task.status === "queued") {
    const data = {
      task: view,
      error: reason,
      retry_at: task.run_at.toISOString(),
      lost_to_infrastructure: true,
      ...infra,
    };
    await writeTaskEvents(tx, [
      { event: newEvent("task.retrying", task.namespace, data, options.now()), taskId },
    ]);
    await writeQueueSignals(tx, task.namespace, [
      {
        task_id: task.id,
        attempt: task.attempt + 1,
        priority: task.priority,
        run_at: task.run_at.toISOString(),
      },
    ]);
    return "queued";
  }
  const data = { task: view, error: task.error, lost_to_infrastructure: true, ...infra };
  await writeTaskEvents(tx, [
    { event: newEvent("task.failed", task.namespace, data, options.now()), taskId },
  ]);
  return "failed";
}

/** Gives an attempt back at once (shutdown): the reaper's path without waiting for the lease. */
export function release(
  db: Db,
  lease: Lease,
  reason: string,
  run: TaskOutcome,
  options: ReapOptions,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<{ id: string }>(`SELECT id FROM tasks WHERE ${FENCE} FOR UPDATE`, [
      lease.taskId,
      lease.workerId,
      lease.series,
      lease.attempt,
    ]);
    if (!rows[0]) return false;
    await takeBack(tx, lease.taskId, reason, options, run);
    return true;
  });
}

/** Takes back running tasks whose lease expired; closes orphaned run rows. */
export async function reapExpired(
  db: Db,
  limit: number,
  options: ReapOptions,
): Promise<{ requeued: number; failed: number; orphanRuns: number }> {
  const counts = { requeued: 0, failed: 0, orphanRuns: 0 };
  await db.transaction(async (tx) => {
    const { rows } = await tx.query<{ id: string }>(
      `SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < now()
       ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit],
    );
    for (const { id } of rows) {
      const outcome = await takeBack(tx, id, "worker lost: its lease expired without a heartbeat", options);
      if (outcome === "queued") counts.requeued++;
      else counts.failed++;
    }
    // Run rows whose worker died after its task moved on (cancelled, restarted): nobody
    // else would close them.
    const orphans = await tx.query(
      `UPDATE task_runs r SET finished_at = clock_timestamp(),
         status = CASE WHEN t.status = 'cancelled' AND t.series = r.series THEN 'cancelled' ELSE 'lost' END,
         error = COALESCE(r.error, 'worker lost: its lease expired without a heartbeat')
       FROM tasks t
       WHERE r.task_id = t.id AND r.finished_at IS NULL AND r.lease_expires_at < now()
         AND NOT (t.status = 'running' AND t.series = r.series AND t.attempt = r.attempt)`,
    );
    counts.orphanRuns = orphans.rowCount ?? 0;
  });
  return counts;
}

/**
 * Takes back every running task and closes every open run at once, whatever its lease says:
 * for a process that knows it is the only worker (the embedded server's one owner at start),
 * everything still running belonged to an instance that is gone.
 */
export async function reclaimAll(
  db: Db,
  reason: string,
  batch: number,
  options: ReapOptions,
): Promise<number> {
  let total = 0;
  for (;;) {
    const taken = await db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string }>(
        `SELECT id FROM tasks WHERE status = 'running' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [batch],
      );
      for (const { id } of rows) await takeBack(tx, id, reason, options);
      return rows.length;
    });
    total += taken;
    if (taken < batch) break;
  }
  await db.query(
    `UPDATE task_runs r SET finished_at = clock_timestamp(),
       status = CASE WHEN t.status = 'cancelled' AND t.series = r.series THEN 'cancelled' ELSE 'lost' END,
       error = COALESCE(r.error, $1)
     FROM tasks t WHERE r.task_id = t.id AND r.finished_at IS NULL`,
    [reason],
  );
  return total;
}
