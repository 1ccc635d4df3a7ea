import { storableText } from "../../../core/plugins/output-tail.js";
import type { TaskOutcome } from "../../../core/plugins/plugin.js";
import { lostRunEnded } from "../../../core/tasks/attempt-plan.js";
import type { Task } from "../../../core/tasks/task.js";
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
  rerunAfterSeconds = 0,
): Promise<"queued" | "failed"> {
  const { rows } = await tx.query<Task>(
    `UPDATE tasks SET infra_retries = infra_retries + 1,
       status = CASE WHEN infra_retries + 1 > $3 THEN 'failed' ELSE 'queued' END::task_status,
       error = CASE WHEN infra_retries + 1 > $3
         THEN $2 || ' (lost ' || (infra_retries + 1) || ' runs to infrastructure; worker.max_infra_retries is ' || $3 || ')'
         ELSE $2 END,
       updated_at = now(), run_at = now() + make_interval(secs => $4),
       finished_at = CASE WHEN infra_retries + 1 > $3 THEN now() END,
       lease_owner = NULL, lease_expires_at = NULL
     WHERE id = $1 AND status = 'running' RETURNING ${TASK_COLUMNS}`,
    [taskId, reason, options.maxInfraRetries, rerunAfterSeconds],
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
  const { event, dispatch } = lostRunEnded(task, reason, options.maxInfraRetries, options.now());
  await writeTaskEvents(tx, [{ event, taskId }]);
  if (dispatch) await writeQueueSignals(tx, task.namespace, [dispatch], options.queueSignals);
  return task.status === "queued" ? "queued" : "failed";
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
 * Local workers silent past their own presence timeout (migrations/0021_workers.sql) are dead,
 * or cut off with their commands stopped on their own clocks by now: their rows go, and their
 * running tasks (claimed ones waiting in their local queues too) come back at once rather than
 * when each lease runs out. A task row locked by someone else is left to its lease's expiry.
 */
export async function reapDeadWorkers(
  db: Db,
  options: ReapOptions,
): Promise<{ workers: string[]; requeued: number; failed: number }> {
  return db.transaction(async (tx) => {
    const dead = await tx.query<{ id: string; dead_after_seconds: number }>(
      `DELETE FROM workers WHERE id IN (
         SELECT id FROM workers WHERE heartbeat_at < now() - make_interval(secs => dead_after_seconds)
         FOR UPDATE SKIP LOCKED)
       RETURNING id, dead_after_seconds`,
    );
    const counts = { workers: dead.rows.map((w) => w.id), requeued: 0, failed: 0 };
    for (const worker of dead.rows) {
      const { rows } = await tx.query<{ id: string }>(
        "SELECT id FROM tasks WHERE status = 'running' AND lease_owner = $1 ORDER BY id FOR UPDATE SKIP LOCKED",
        [worker.id],
      );
      const reason = `worker lost: ${worker.id} sent no heartbeat for ${worker.dead_after_seconds} s`;
      for (const { id } of rows) {
        if ((await takeBack(tx, id, reason, options)) === "queued") counts.requeued++;
        else counts.failed++;
      }
    }
    return counts;
  });
}

/**
 * Takes back every running task and closes every open run at once, whatever its lease says:
 * for a process that knows it is the only worker (the embedded server's one owner at start),
 * everything still running belonged to an instance that is gone. Its commands may still be
 * ending: each supervisor stops its command when its TME dies, with SIGTERM and up to the kill
 * grace before SIGKILL, so the tasks run again only `rerunAfterSeconds` (that grace) from now.
 */
export async function reclaimAll(
  db: Db,
  reason: string,
  batch: number,
  options: ReapOptions,
  rerunAfterSeconds = 0,
): Promise<number> {
  let total = 0;
  for (;;) {
    const taken = await db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string }>(
        `SELECT id FROM tasks WHERE status = 'running' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [batch],
      );
      for (const { id } of rows) await takeBack(tx, id, reason, options, {}, rerunAfterSeconds);
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
