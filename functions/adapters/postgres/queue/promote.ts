import type { QueueDispatch } from "../../../core/events/event.js";
import { dispatchFor } from "../../../core/tasks/control-plan.js";
import type { Task } from "../../../core/tasks/task.js";
import type { Db, Queryable } from "../database.js";
import { type QueueSignalRoute, writeQueueSignals } from "../event-writer.js";
import { CLAIMABLE, FAIR_LINE_CTES, lockFairLine } from "./queue-sql.js";

/** What a queue signal for a task's next attempt needs. */
type DueTask = Pick<Task, "id" | "namespace" | "attempt" | "priority" | "run_at">;

/** Queue signals for the next attempt of each task, one batch per namespace. */
export async function signalNextAttempts(
  tx: Queryable,
  rows: ReadonlyArray<DueTask>,
  route: QueueSignalRoute,
): Promise<void> {
  const byNamespace = new Map<string, QueueDispatch[]>();
  for (const row of rows) {
    const list = byNamespace.get(row.namespace) ?? [];
    list.push(dispatchFor(row));
    byNamespace.set(row.namespace, list);
  }
  for (const [namespace, dispatches] of byNamespace)
    await writeQueueSignals(tx, namespace, dispatches, route);
}

/** Moves retrying tasks whose time has come back to queued, with a queue signal. */
export function promoteDueRetries(db: Db, limit: number, route: QueueSignalRoute): Promise<number> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<DueTask>(
      `UPDATE tasks t SET status = 'queued', updated_at = now()
       FROM (SELECT id FROM tasks WHERE status = 'retrying' AND run_at <= now()
             ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
       WHERE t.id = due.id
       RETURNING t.id, t.namespace, t.attempt, t.priority, t.run_at`,
      [limit],
    );
    // No event: the task.retrying event already announced this moment (its retry_at).
    await signalNextAttempts(tx, rows, route);
    return rows.length;
  });
}

/**
 * Cloud safety net: queued tasks that are due, not held by a paused type, and had no queue
 * signal for `olderThanSeconds` get a new one, the first of the line first (fair between
 * namespaces). Covers a message dropped after a skipped claim
 * (its type was paused or full) or lost anywhere between the outbox and the worker.
 */
export function redispatchStranded(
  db: Db,
  olderThanSeconds: number,
  limit: number,
  route: QueueSignalRoute,
): Promise<number> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<DueTask>(
      `WITH RECURSIVE ${FAIR_LINE_CTES}
       ${lockFairLine({
         columns: "t.id, t.namespace, t.attempt, t.priority, t.run_at",
         where: `${CLAIMABLE}
           AND t.run_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.type = 'queue.dispatch'
             AND o.payload ->> 'task_id' = t.id AND o.created_at > now() - make_interval(secs => $1))`,
         limit: "$2",
         reach: "$2",
       })}`,
      [olderThanSeconds, limit],
    );
    const now = new Date();
    await signalNextAttempts(
      tx,
      rows.map((row) => ({ ...row, run_at: now })),
      route,
    );
    return rows.length;
  });
}
