import { QUEUE_DISPATCH, type QueueDispatch, type TmeEvent } from "../../core/events/event.js";
import { withFields } from "../../core/objects.js";
import type { Queryable } from "./database.js";
import { OUTBOX_CHANNEL } from "./outbox-repository.js";
import { mayWantEvent } from "./subscription-repository.js";

/**
 * Which events go to the outbox for the bus, a setting of the database session (so every writer
 * of events follows it without being told): unset, every event (the cloud: the EventBridge bus is
 * an integration point, rules other than TME's may read it); "subscribed", only the events some
 * subscription may want (the local runtime: the only reader of its bus is the webhook fan-out, so
 * an event no subscription wants would be written, relayed to nothing and deleted, three writes
 * for nothing). The task's history (task_events) is written either way. A subscription sees the
 * events written after it was committed.
 */
export const BUS_EVENTS_SETTING = "tme.bus_events";

/** The session settings of a runtime's database connections (see BUS_EVENTS_SETTING). */
export function eventSessionSettings(runtime: "local" | "cloud"): Record<string, string> {
  return runtime === "local" ? { [BUS_EVENTS_SETTING]: "subscribed" } : {};
}

/**
 * SQL: true when an event goes to the outbox for the bus (see BUS_EVENTS_SETTING). `namespace`
 * and `type` are SQL expressions, qualified: the condition reads `subscriptions s`.
 */
export function goesToBus(namespace: string, type: string): string {
  return `(current_setting('${BUS_EVENTS_SETTING}', true) IS DISTINCT FROM 'subscribed'
    OR EXISTS (SELECT 1 FROM subscriptions s WHERE ${mayWantEvent(namespace, type)}))`;
}

/**
 * NOTIFY channel that wakes the local event stream (GET /stream tails task_events): sent with
 * every write of task events. The outbox channel is sent only when outbox rows were written, so
 * that the relay is not woken to find nothing (the local runtime writes an outbox row for an event
 * only when a subscription may want it).
 */
export const TASK_EVENTS_CHANNEL = "tme_task_events";

/** NOTIFY channel that wakes local workers when a task becomes claimable. */
export const TASK_QUEUED_CHANNEL = "tme_task_queued";

/**
 * NOTIFY channel (payload: a task id) that tells workers to abort that task's running attempt
 * now: the API sends it in the same transaction that cancels a running task.
 */
export const TASK_CONTROL_CHANNEL = "tme_task_control";

/**
 * Records an event in the same transaction as the change it describes: in task_events
 * (the task's history, when it is about a task) and in the outbox (for the bus, see
 * BUS_EVENTS_SETTING), with the NOTIFYs that wake the event stream and, when a row went to the
 * outbox, the relay: one statement, one round trip.
 */
export async function writeEvent(tx: Queryable, event: TmeEvent, taskId?: string): Promise<void> {
  await tx.query(
    `WITH history AS (
       INSERT INTO task_events (event_id, namespace, task_id, type, data, occurred_at)
       SELECT $1, $2, $3, $4, $5, $6 WHERE $3::text IS NOT NULL),
     relayed AS (INSERT INTO outbox (event_id, namespace, type, payload) SELECT $1, $2, $4, $7 WHERE ${goesToBus("$2", "$4")}
       RETURNING 1)
     SELECT (SELECT pg_notify($8, '') WHERE EXISTS (SELECT 1 FROM relayed)),
       (SELECT pg_notify($9, '') WHERE $3::text IS NOT NULL)`,
    [
      event.id,
      event.namespace,
      taskId ?? null,
      event.type,
      JSON.stringify(event.data),
      event.occurred_at,
      JSON.stringify(event),
      OUTBOX_CHANNEL,
      TASK_EVENTS_CHANNEL,
    ],
  );
}

/** The events of taskEventCtes as its jsonb parameter: each TmeEvent with its task_id. */
export function taskEventsJson(items: ReadonlyArray<{ event: TmeEvent; taskId: string }>): string {
  return JSON.stringify(items.map(({ event, taskId }) => withFields(event, { task_id: taskId })));
}

/**
 * The CTEs that record task events, for a statement that writes them with the change they
 * describe (writeTaskEvents, the claim): `events` is a query of one jsonb column `e` (rows of
 * taskEventsJson); `outboxChannel` and `eventsChannel` are the parameters naming OUTBOX_CHANNEL
 * and TASK_EVENTS_CHANNEL. The statement must read `events_woken` (a SELECT CTE runs only when
 * read): it sends the NOTIFYs.
 */
export function taskEventCtes(events: string, outboxChannel: string, eventsChannel: string): string {
  return `e AS (${events}),
  history AS (
    INSERT INTO task_events (event_id, namespace, task_id, type, data, occurred_at)
    SELECT e->>'id', e->>'namespace', e->>'task_id', e->>'type', e->'data', (e->>'occurred_at')::timestamptz
    FROM e),
  relayed AS (
    INSERT INTO outbox (event_id, namespace, type, payload)
    SELECT e->>'id', e->>'namespace', e->>'type', e - 'task_id' FROM e WHERE ${goesToBus("e->>'namespace'", "e->>'type'")}
    RETURNING 1),
  events_woken AS (
    SELECT (SELECT pg_notify(${outboxChannel}, '') WHERE EXISTS (SELECT 1 FROM relayed)) AS relay,
      (SELECT pg_notify(${eventsChannel}, '') WHERE EXISTS (SELECT 1 FROM e)) AS stream)`;
}

/**
 * writeEvent for many task events at once (bulk actions, completions): one statement whatever
 * the number of events.
 */
export async function writeTaskEvents(
  tx: Queryable,
  items: ReadonlyArray<{ event: TmeEvent; taskId: string }>,
): Promise<void> {
  if (items.length === 0) return;
  await tx.query(
    `WITH ${taskEventCtes("SELECT value AS e FROM jsonb_array_elements($1::jsonb)", "$2", "$3")}
     SELECT * FROM events_woken`,
    [taskEventsJson(items), OUTBOX_CHANNEL, TASK_EVENTS_CHANNEL],
  );
}

/**
 * Where queue signals go. "outbox": an outbox row per signal, relayed to the task queue (SQS in
 * the cloud, whose workers are fed by it), plus the NOTIFY. "notify": the NOTIFY alone: local
 * workers claim straight from Postgres, so a row would be written, relayed to nowhere and
 * deleted, costing a write per task for nothing.
 */
export type QueueSignalRoute = "outbox" | "notify";

/** The cloud relays queue signals to SQS; the local runtime has no reader for them. */
export function queueSignalRouteFor(runtime: "local" | "cloud"): QueueSignalRoute {
  return runtime === "cloud" ? "outbox" : "notify";
}

/**
 * Signals that a task can be claimed: a NOTIFY for local workers and, on the "outbox" route, an
 * outbox row for the cloud queue. Both are transactional: they take effect only if the change
 * commits. One statement either way.
 */
export async function writeQueueSignal(
  tx: Queryable,
  namespace: string,
  dispatch: QueueDispatch,
  route: QueueSignalRoute = "outbox",
): Promise<void> {
  if (route === "notify") {
    await tx.query("SELECT pg_notify($1, $2)", [TASK_QUEUED_CHANNEL, dispatch.task_id]);
    return;
  }
  await tx.query(
    `WITH signal AS (
       INSERT INTO outbox (event_id, namespace, type, payload, next_attempt_at)
       VALUES ('q_' || $1 || '_' || md5(random()::text), $2, $3, $4, $5))
     SELECT pg_notify($6, $1), pg_notify($7, '')`,
    [
      dispatch.task_id,
      namespace,
      QUEUE_DISPATCH,
      JSON.stringify(dispatch),
      dispatch.run_at,
      TASK_QUEUED_CHANNEL,
      OUTBOX_CHANNEL,
    ],
  );
}

/** writeQueueSignal for many tasks of one namespace at once (one statement). */
export async function writeQueueSignals(
  tx: Queryable,
  namespace: string,
  dispatches: readonly QueueDispatch[],
  route: QueueSignalRoute = "outbox",
): Promise<void> {
  if (dispatches.length === 0) return;
  if (route === "notify") {
    await wakeWorkers(tx);
    return;
  }
  await tx.query(
    `WITH signals AS (
       INSERT INTO outbox (event_id, namespace, type, payload, next_attempt_at)
       SELECT 'q_' || (d->>'task_id') || '_' || md5(random()::text), $2, $3, d, (d->>'run_at')::timestamptz
       FROM jsonb_array_elements($1::jsonb) AS d)
     SELECT pg_notify($4, ''), pg_notify($5, '')`,
    [JSON.stringify(dispatches), namespace, QUEUE_DISPATCH, TASK_QUEUED_CHANNEL, OUTBOX_CHANNEL],
  );
}

/**
 * Wakes every local worker pool when the transaction commits: they wake on the channel whatever
 * the payload, and an empty one is about no type in particular (so no pool passes over it).
 */
export async function wakeWorkers(tx: Queryable): Promise<void> {
  await tx.query("SELECT pg_notify($1, '')", [TASK_QUEUED_CHANNEL]);
}

/** Tells the engine to stop these tasks' running attempts (it LISTENs on TASK_CONTROL_CHANNEL). */
export async function notifyTaskControl(tx: Queryable, taskIds: readonly string[]): Promise<void> {
  if (taskIds.length === 0) return;
  await tx.query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", [TASK_CONTROL_CHANNEL, taskIds]);
}
