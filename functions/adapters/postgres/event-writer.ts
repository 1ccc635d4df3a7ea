import { QUEUE_DISPATCH, type QueueDispatch, type TmeEvent } from "../../core/events/event.js";
import type { Queryable } from "./database.js";
import { OUTBOX_CHANNEL } from "./outbox-repository.js";

/** NOTIFY channel that wakes local workers when a task becomes claimable. */
export const TASK_QUEUED_CHANNEL = "tme_task_queued";

/**
 * Records an event in the same transaction as the change it describes: in task_events
 * (the task's history, when it is about a task) and in the outbox (for the bus).
 */
export async function writeEvent(tx: Queryable, event: TmeEvent, taskId?: string): Promise<void> {
  if (taskId) {
    await tx.query(
      `INSERT INTO task_events (event_id, namespace, task_id, type, data, occurred_at) VALUES ($1, $2, $3, $4, $5, $6)`,
      [event.id, event.namespace, taskId, event.type, JSON.stringify(event.data), event.occurred_at],
    );
  }
  await tx.query(`INSERT INTO outbox (event_id, namespace, type, payload) VALUES ($1, $2, $3, $4)`, [
    event.id,
    event.namespace,
    event.type,
    JSON.stringify(event),
  ]);
  await tx.query("SELECT pg_notify($1, '')", [OUTBOX_CHANNEL]);
}

/**
 * Signals that a task can be claimed: an outbox row for the cloud queue (relayed to SQS) and a
 * NOTIFY for local workers. Both are transactional: they take effect only if the change commits.
 */
export async function writeQueueSignal(
  tx: Queryable,
  namespace: string,
  dispatch: QueueDispatch,
): Promise<void> {
  await tx.query(
    `INSERT INTO outbox (event_id, namespace, type, payload, next_attempt_at)
     VALUES ('q_' || $1 || '_' || md5(random()::text), $2, $3, $4, $5)`,
    [dispatch.task_id, namespace, QUEUE_DISPATCH, JSON.stringify(dispatch), dispatch.run_at],
  );
  await tx.query("SELECT pg_notify($1, $2), pg_notify($3, '')", [
    TASK_QUEUED_CHANNEL,
    dispatch.task_id,
    OUTBOX_CHANNEL,
  ]);
}
