import { newEvent, type TmeEvent } from "../events/event.js";
import { type Task, toTaskView } from "./task.js";
import type { AttemptEnd } from "./task-queue.js";

/**
 * The engine's state changes, planned here and applied by the queue repository: what a claim and
 * the end of an attempt write, and the lifecycle event each one records. The repository applies a
 * plan with a fenced statement and writes the events of the rows it really changed, in the same
 * transaction; the events describe the task as it is after the change (the row it returned).
 */

/** task.started, for a task as the claim left it. */
export function startedEvent(task: Task, workerId: string, now: Date): TmeEvent {
  return newEvent("task.started", task.namespace, { task: toTaskView(task), worker_id: workerId }, now);
}

type EndingStatus = Exclude<AttemptEnd["status"], "released" | "cancelled">;

/** The run row's status for each way an attempt ends (a retried attempt's run failed). */
export const RUN_STATUS_OF_END: Record<Exclude<AttemptEnd["status"], "released">, string> = {
  succeeded: "succeeded",
  failed: "failed",
  retrying: "failed",
  timed_out: "timed_out",
  cancelled: "cancelled",
};

/** What the end of an attempt writes to its task (the repository fences it by lease). */
export interface AttemptEndChange {
  status: EndingStatus;
  result: unknown;
  error: string | null;
  /** succeeded, failed and timed_out end the series; retrying waits for its next attempt. */
  finished: boolean;
  /** retrying: the next attempt is due this long after the end. */
  retryInMs: number;
}

export function planAttemptEnd(
  end: Extract<AttemptEnd, { status: EndingStatus }>,
  error: string | null,
): AttemptEndChange {
  return {
    status: end.status,
    result: end.status === "succeeded" ? (end.result ?? null) : null,
    error,
    finished: end.status !== "retrying",
    retryInMs: end.status === "retrying" ? end.retryInMs : 0,
  };
}

/** The event of an attempt's end, for the task as the fenced write left it. */
export function attemptEndEvent(task: Task, status: EndingStatus, error: string | null, now: Date): TmeEvent {
  const view = toTaskView(task);
  switch (status) {
    case "succeeded":
      return newEvent("task.succeeded", task.namespace, { task: view }, now);
    case "failed":
      return newEvent("task.failed", task.namespace, { task: view, error }, now);
    case "timed_out":
      return newEvent("task.timed_out", task.namespace, { task: view, error }, now);
    case "retrying":
      return newEvent(
        "task.retrying",
        task.namespace,
        { task: view, error, retry_at: task.run_at.toISOString() },
        now,
      );
  }
}
