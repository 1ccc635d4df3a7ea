import type { AppConfig } from "../../config/schema.js";
import { Conflict, type ErrorDetail, Unprocessable, ValidationFailed } from "../errors.js";
import { type EventType, newEvent, type QueueDispatch, type TmeEvent } from "../events/event.js";
import { IllegalTransition, nextStatus, type TaskAction } from "./state-machine.js";
import { countedAttempts, type Task, type TaskStatus, toTaskView, WAITING_STATUSES } from "./task.js";

/** The actions an API caller may take on one task (the engine owns claim, succeed, retry, ...). */
export const CONTROL_ACTIONS = ["cancel", "pause", "resume", "restart"] as const;
export type ControlAction = (typeof CONTROL_ACTIONS)[number];

const EVENT_OF: Record<ControlAction, EventType> = {
  cancel: "task.cancelled",
  pause: "task.paused",
  resume: "task.resumed",
  restart: "task.restarted",
};

/**
 * One change to one task, planned by the core from the task as it is, and applied by the store
 * only if the task still has `expectedStatus` (the store also holds the row lock while planning,
 * so the check is a second line of defence against a racing worker, not the only one).
 */
export interface TaskChange {
  expectedStatus: TaskStatus;
  /** The task after the change; the store writes its mutable fields. */
  next: Task;
  /** Lifecycle event, written in the same transaction. */
  event: TmeEvent | null;
  /** Queue signal, when the change makes the task claimable. */
  dispatch: QueueDispatch | null;
  /** Tell the engine to stop the running attempt now (NOTIFY tme_task_control). */
  stopRunning: boolean;
}

/** The queue signal for a task that just became queued: its next attempt, not before run_at. */
export function dispatchFor(task: Pick<Task, "id" | "attempt" | "priority" | "run_at">): QueueDispatch {
  return {
    task_id: task.id,
    attempt: task.attempt + 1,
    priority: task.priority,
    run_at: task.run_at.toISOString(),
  };
}

function withEvent(next: Task, type: EventType, now: Date): TmeEvent {
  return newEvent(type, next.namespace, { task: toTaskView(next) }, now);
}

/**
 * The change an action makes, or IllegalTransition (409 naming the current status).
 *
 * - cancel: any waiting or running status; a running task keeps its lease columns so the
 *   worker's fenced completion finds the task no longer running and writes nothing.
 * - pause / resume: the status only; a task paused while retrying keeps its retry time as run_at.
 * - restart: a new attempt series from now, with the previous outcome cleared.
 */
export function planAction(task: Task, action: ControlAction, now: Date): TaskChange {
  const status = nextStatus(task.id, task.status, action as TaskAction);
  let next: Task = { ...task, status, updated_at: now };
  let stopRunning = false;
  switch (action) {
    case "cancel":
      next = { ...next, finished_at: now };
      stopRunning = task.status === "running";
      break;
    case "restart":
      next = {
        ...next,
        series: task.series + 1,
        attempt: 0,
        infra_retries: 0,
        result: null,
        error: null,
        progress: null,
        started_at: null,
        finished_at: null,
        run_at: now,
      };
      break;
    case "pause":
    case "resume":
      break;
  }
  const queued = next.status === "queued";
  return {
    expectedStatus: task.status,
    next,
    event: withEvent(next, EVENT_OF[action], now),
    dispatch: queued ? dispatchFor(next) : null,
    stopRunning,
  };
}

/** Fields PATCH /task/{id} may set, plus `status` as an action. */
export interface TaskUpdate {
  description?: string | null;
  priority?: number;
  labels?: Record<string, string>;
  timeout_seconds?: number;
  max_attempts?: number;
  run_at?: Date;
  status?: "paused" | "queued" | "cancelled";
}

const ACTION_OF_STATUS: Record<NonNullable<TaskUpdate["status"]>, ControlAction> = {
  paused: "pause",
  queued: "resume",
  cancelled: "cancel",
};

/**
 * PATCH: field edits checked against the task as it is, then the status action if any.
 * Edits alone write no lifecycle event (the audit log records them); a queued task whose
 * priority or run_at changed gets a fresh queue signal, so the cloud queue sees the new values.
 */
export function planUpdate(
  task: Task,
  update: TaskUpdate,
  now: Date,
  limits: Pick<AppConfig, "max_task_timeout">,
): TaskChange {
  const invalid: ErrorDetail[] = [];
  if (update.timeout_seconds !== undefined && update.timeout_seconds > limits.max_task_timeout) {
    invalid.push({
      path: "timeout_seconds",
      message: `must be <= ${limits.max_task_timeout} (max_task_timeout)`,
    });
  }
  if (invalid.length > 0) {
    throw new ValidationFailed(invalid.map((d) => `${d.path} ${d.message}`).join("; "), invalid);
  }
  // A waiting task still needs its next attempt: a limit equal to the attempts made would leave
  // it queued forever, never claimable (the claim requires attempt < max_attempts).
  const made = countedAttempts(task);
  const minAttempts = WAITING_STATUSES.includes(task.status) ? made + 1 : made;
  if (update.max_attempts !== undefined && update.max_attempts < minAttempts) {
    const why = WAITING_STATUSES.includes(task.status)
      ? `${made} attempts made and the task waits for its next one; cancel it to give up`
      : "attempts made in this series";
    throw new Unprocessable(`max_attempts ${update.max_attempts} leaves task ${task.id} no attempt to make`, [
      { path: "max_attempts", message: `must be >= ${minAttempts} (${why})` },
    ]);
  }
  if (update.run_at !== undefined && !WAITING_STATUSES.includes(task.status)) {
    throw new Conflict("illegal_update", `cannot change run_at of task ${task.id}: it is ${task.status}`, [
      {
        path: "run_at",
        message: `is editable while ${WAITING_STATUSES.join(", ")}; the task is ${task.status}`,
      },
    ]);
  }

  const edited: Task = {
    ...task,
    description: update.description === undefined ? task.description : update.description,
    priority: update.priority ?? task.priority,
    labels: update.labels ?? task.labels,
    timeout_seconds: update.timeout_seconds ?? task.timeout_seconds,
    max_attempts: update.max_attempts ?? task.max_attempts,
    run_at: update.run_at ?? task.run_at,
    updated_at: now,
  };

  if (update.status !== undefined) {
    const action = ACTION_OF_STATUS[update.status];
    try {
      return planAction(edited, action, now);
    } catch (error) {
      // Name the status the caller asked for, not the internal action name.
      if (error instanceof IllegalTransition) {
        throw new Conflict(
          "illegal_transition",
          `cannot set status of task ${task.id} to ${update.status}: it is ${task.status}`,
          [{ path: "status", message: `is ${task.status}; cannot become ${update.status}` }],
        );
      }
      throw error;
    }
  }

  const requeue =
    task.status === "queued" &&
    (edited.priority !== task.priority || edited.run_at.getTime() !== task.run_at.getTime());
  return {
    expectedStatus: task.status,
    next: edited,
    event: null,
    dispatch: requeue ? dispatchFor(edited) : null,
    stopRunning: false,
  };
}
