import { newId } from "../ids.js";

/** Event types a subscriber can ask for (API.md "Event subscriptions"). */
export const EVENT_TYPES = [
  "task.created",
  "task.started",
  "task.progress",
  "task.succeeded",
  "task.failed",
  "task.timed_out",
  "task.cancelled",
  "task.paused",
  "task.resumed",
  "task.retrying",
  "task.restarted",
  "schedule.fired",
  "schedule.paused",
  "schedule.resumed",
  "alert.raised",
  "alert.resolved",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What subscribers receive, and what the outbox carries to the bus. */
export interface TmeEvent {
  id: string;
  type: EventType;
  occurred_at: string;
  namespace: string;
  data: Record<string, unknown>;
}

export function newEvent(
  type: EventType,
  namespace: string,
  data: Record<string, unknown>,
  now: Date,
): TmeEvent {
  return { id: newId("evt"), type, occurred_at: now.toISOString(), namespace, data };
}

/**
 * Outbox rows are either events (type = an EventType, payload = TmeEvent), relayed to the
 * event bus, or queue signals (type = QUEUE_DISPATCH, payload = QueueDispatch), relayed to
 * the task queue (SQS in the cloud).
 */
export const QUEUE_DISPATCH = "queue.dispatch";

export interface QueueDispatch {
  task_id: string;
  attempt: number;
  priority: number;
  /** Not before this instant (delayed tasks, retries). */
  run_at: string;
}
