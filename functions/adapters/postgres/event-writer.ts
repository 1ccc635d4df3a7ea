import { QUEUE_DISPATCH, type QueueDispatch, type TmeEvent } from "../../core/events/event.js";
import type { Queryable } from "./database.js";
import { OUTBOX_CHANNEL } from "./outbox-repository.js";

/** NOTIFY channel that wakes local workers when a task becomes claimable. */
export const TASK_QUEUED_CHANNEL = "tme_task_queued";

/**
 * NOTIFY channel (payload: a task id) that tells workers to abort that task's running attempt
 * now: the API sends it in the same transaction that cancels a running task.
 */
export const TASK_CONTROL_CHANNEL = "tme_task_control";

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
 * writeEvent for many task events at once (bulk actions): two INSERTs and one NOTIFY
 * whatever the number of events.
 */
export async function writeTaskEvents(
  tx: Queryable,
  items: ReadonlyArray<{ event: TmeEvent; taskId: string }>,
): Promise<void> {
  if (items.length === 0) return;
  const events = items.map(({ event, taskId }) => ({ ...event, task_id: taskId }));
  await tx.query(
    `INSERT INTO task_events (event_id, namespace, task_id, type, data, occurred_at)
     SELECT e.id, e.namespace, e.task_id, e.type, e.data, e.occurred_at
     FROM jsonb_to_recordset($1::jsonb) AS e(id text, namespace text, task_id text, type text, data jsonb, occurred_at timestamptz)`,
    [JSON.stringify(events)],
  );
  await tx.query(
    `INSERT INTO outbox (event_id, namespace, type, payload)
     SELECT e->>'id', e->>'namespace', e->>'type', e - 'task_id' FROM jsonb_array_elements($1::jsonb) AS e`,
    [JSON.stringify(events)],
  );
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

/** writeQueueSignal for many tasks of one namespace at once. */
export async function writeQueueSignals(
  tx: Queryable,
  namespace: string,
  dispatches: readonly QueueDispatch[],
): Promise<void> {
  if (dispatches.length === 0) return;
  await tx.query(
    `INSERT INTO outbox (event_id, namespace, type, payload, next_attempt_at)
     SELECT 'q_' || (d->>'task_id') || '_' || md5(random()::text), $2, $3, d, (d->>'run_at')::timestamptz
     FROM jsonb_array_elements($1::jsonb) AS d`,
    [JSON.stringify(dispatches), namespace, QUEUE_DISPATCH],
  );
  await tx.query("SELECT pg_notify($1, d->>'task_id') FROM jsonb_array_elements($2::jsonb) AS d", [
    TASK_QUEUED_CHANNEL,
    JSON.stringify(dispatches),
  ]);
  await tx.query("SELECT pg_notify($1, '')", [OUTBOX_CHANNEL]);
}

/** Tells the engine to stop these tasks' running attempts (it LISTENs on TASK_CONTROL_CHANNEL). */
export async function notifyTaskControl(tx: Queryable, taskIds: readonly string[]): Promise<void> {
  if (taskIds.length === 0) return;
  await tx.query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", [TASK_CONTROL_CHANNEL, taskIds]);
}
