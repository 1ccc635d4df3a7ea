import { Conflict } from "../errors.js";
import { FINISHED_STATUSES, type TaskStatus, UNFINISHED_STATUSES } from "./task.js";

/**
 * The task lifecycle (ARCHITECTURE.md): which action may move a task from which status,
 * and where to. The schema's CHECK constraints refuse what this table forbids.
 *
 *   queued --claim--> running --succeed--> succeeded
 *   running --retry--> retrying --requeue--> queued;  running --fail--> failed;  running --time_out--> timed_out
 *   queued --pause--> paused --resume--> queued
 *   queued|paused|retrying|running --cancel--> cancelled
 *   failed|timed_out|cancelled|succeeded --restart--> queued (new attempt series)
 *   running --reclaim--> queued (a dead worker's expired lease, attempts left)
 */
export const TRANSITIONS = {
  claim: { from: ["queued"], to: "running" },
  succeed: { from: ["running"], to: "succeeded" },
  retry: { from: ["running"], to: "retrying" },
  fail: { from: ["running"], to: "failed" },
  time_out: { from: ["running"], to: "timed_out" },
  requeue: { from: ["retrying"], to: "queued" },
  reclaim: { from: ["running"], to: "queued" },
  pause: { from: ["queued", "retrying"], to: "paused" },
  resume: { from: ["paused"], to: "queued" },
  cancel: { from: UNFINISHED_STATUSES, to: "cancelled" },
  restart: { from: FINISHED_STATUSES, to: "queued" },
} as const satisfies Record<string, { from: readonly TaskStatus[]; to: TaskStatus }>;

export type TaskAction = keyof typeof TRANSITIONS;

export class IllegalTransition extends Conflict {
  readonly current: TaskStatus;
  constructor(taskId: string, action: TaskAction, current: TaskStatus) {
    const allowed = TRANSITIONS[action].from;
    super("illegal_transition", `cannot ${action} task ${taskId}: it is ${current}`, [
      { path: "status", message: `is ${current}; ${action} needs one of ${allowed.join(", ")}` },
    ]);
    this.current = current;
  }
}

export function canTransition(current: TaskStatus, action: TaskAction): boolean {
  return (TRANSITIONS[action].from as readonly TaskStatus[]).includes(current);
}

/** The status after `action`, or IllegalTransition (409, naming the current status). */
export function nextStatus(taskId: string, current: TaskStatus, action: TaskAction): TaskStatus {
  if (!canTransition(current, action)) throw new IllegalTransition(taskId, action, current);
  return TRANSITIONS[action].to;
}
