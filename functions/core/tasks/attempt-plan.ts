import { newEvent, type QueueDispatch, type TmeEvent } from "../events/event.js";
import { dispatchFor } from "./control-plan.js";
import { type Task, toTaskView } from "./task.js";
import type { AttemptEnd } from "./task-queue.js";

/**
 * The engine's state changes, planned here and applied by the queue repository: what a claim and
 * the end of an attempt write, and the lifecycle event each one records. The repository applies a
 * plan with a fenced statement and writes the events of the rows it really changed, in the same
 * transaction; the events describe the task as it is after the change (the row it returned).
 */

/**
 * A claimed candidate as its claim leaves it: running its next attempt for this worker, started
 * at `at`. The claim statement writes these values (the lease's expiry is the database's clock).
 */
export function claimedTask(task: Task, workerId: string, at: Date): Task {
  return {
    ...task,
    status: "running",
    attempt: task.attempt + 1,
    lease_owner: workerId,
    started_at: at,
    updated_at: at,
  };
}

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

/**
 * What the end of an attempt records once its fenced write returned the task: the lifecycle event
 * and, for a retry, the queue signal of its next attempt (sent now, due at the retry time: the
 * cloud queue delivers it then and the claim promotes the task; locally the promoter does).
 */
export function attemptEnded(
  task: Task,
  status: EndingStatus,
  error: string | null,
  now: Date,
): { event: TmeEvent; dispatch?: QueueDispatch } {
  const event = attemptEndEvent(task, status, error, now);
  return status === "retrying" ? { event, dispatch: dispatchFor(task) } : { event };
}

/**
 * What a run lost to infrastructure records (its worker died, was presumed dead, or shut down):
 * the task as the reaper left it, queued again (task.retrying, with its queue signal) or failed
 * once worker.max_infra_retries is spent. Such runs do not count against max_attempts.
 */
export function lostRunEnded(
  task: Task,
  reason: string,
  maxInfraRetries: number,
  now: Date,
): { event: TmeEvent; dispatch?: QueueDispatch } {
  const infra = { infra_retries: task.infra_retries, max_infra_retries: maxInfraRetries };
  const view = toTaskView(task);
  if (task.status === "queued") {
    const data = {
      task: view,
      error: reason,
      retry_at: task.run_at.toISOString(),
      lost_to_infrastructure: true,
    };
    return {
      event: newEvent("task.retrying", task.namespace, { ...data, ...infra }, now),
      dispatch: dispatchFor(task),
    };
  }
  const data = { task: view, error: task.error, lost_to_infrastructure: true, ...infra };
  return { event: newEvent("task.failed", task.namespace, data, now) };
}

/** task.progress, for a task as the progress write left it. */
export function progressEvent(task: Task, progress: unknown, now: Date): TmeEvent {
  return newEvent("task.progress", task.namespace, { task: toTaskView(task), progress }, now);
}
