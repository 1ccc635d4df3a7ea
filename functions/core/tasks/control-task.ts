import type { AppConfig } from "../../config/schema.js";
import { NotFound } from "../errors.js";
import { type ControlAction, planAction, planUpdate, type TaskUpdate } from "./control-plan.js";
import { TRANSITIONS } from "./state-machine.js";
import type { Task } from "./task.js";
import type { TaskControlStore, TaskFilter } from "./task-control-store.js";

export interface ControlDeps {
  control: TaskControlStore;
  config: Pick<AppConfig, "max_task_timeout">;
  now: () => Date;
}

async function changeOrNotFound(
  deps: ControlDeps,
  namespace: string,
  id: string,
  plan: (task: Task) => ReturnType<typeof planAction>,
): Promise<Task> {
  const task = await deps.control.change(namespace, id, plan);
  if (!task) throw new NotFound("task", id);
  return task;
}

/** Cancels a waiting or running task; a running one is told to stop (the engine kills it). */
export function cancelTask(deps: ControlDeps, namespace: string, id: string): Promise<Task> {
  return changeOrNotFound(deps, namespace, id, (task) => planAction(task, "cancel", deps.now()));
}

/** Holds a queued or retrying task until it is resumed. */
export function pauseTask(deps: ControlDeps, namespace: string, id: string): Promise<Task> {
  return changeOrNotFound(deps, namespace, id, (task) => planAction(task, "pause", deps.now()));
}

/** Puts a paused task back in the queue. */
export function resumeTask(deps: ControlDeps, namespace: string, id: string): Promise<Task> {
  return changeOrNotFound(deps, namespace, id, (task) => planAction(task, "resume", deps.now()));
}

/** Starts a new attempt series of a finished task, now. */
export function restartTask(deps: ControlDeps, namespace: string, id: string): Promise<Task> {
  return changeOrNotFound(deps, namespace, id, (task) => planAction(task, "restart", deps.now()));
}

/** PATCH: edits and an optional status action, in one change. */
export function updateTask(
  deps: ControlDeps,
  namespace: string,
  id: string,
  update: TaskUpdate,
): Promise<Task> {
  return changeOrNotFound(deps, namespace, id, (task) => planUpdate(task, update, deps.now(), deps.config));
}

export interface BulkResult {
  changed: number;
  skipped: number;
  /** True when the per-call cap stopped the action early: call again to go on. */
  more: boolean;
}

/** Tasks locked and changed per transaction: keeps each transaction short next to the workers. */
export const BULK_BATCH_SIZE = 200;
/** Tasks one call changes at most, so one request stays within an API timeout. */
export const BULK_MAX_CHANGES = 10_000;

/**
 * POST /tasks/actions. Walks the tasks the filter selects whose status allows the action,
 * newest first in batches, each batch locked and changed in one transaction; a task whose
 * status changed meanwhile (a worker claimed it) is skipped, as are those the filter selects
 * whose status never allowed the action. Every changed task has moved out of the action's
 * source statuses, so a call cut short by the cap resumes where it stopped when repeated.
 */
export async function bulkAction(
  deps: ControlDeps,
  namespace: string,
  action: ControlAction,
  filter: TaskFilter,
  options: { batchSize?: number; maxChanges?: number } = {},
): Promise<BulkResult> {
  const batchSize = options.batchSize ?? BULK_BATCH_SIZE;
  const maxChanges = options.maxChanges ?? BULK_MAX_CHANGES;
  const legal = TRANSITIONS[action].from;
  const wanted = filter.status ?? [...legal];
  const actionable = wanted.filter((s) => legal.includes(s as never));
  const illegal = wanted.filter((s) => !legal.includes(s as never));

  let skipped = illegal.length > 0 ? await deps.control.count(namespace, { ...filter, status: illegal }) : 0;
  if (filter.status === undefined) {
    // No status filter: every status the action does not apply to is skipped.
    const all = await deps.control.count(namespace, filter);
    const legalCount = await deps.control.count(namespace, { ...filter, status: [...legal] });
    skipped = all - legalCount;
  }

  let changed = 0;
  let cursor: Parameters<TaskControlStore["list"]>[3];
  if (actionable.length === 0) return { changed, skipped, more: false };
  while (changed < maxChanges) {
    const page = await deps.control.list(
      namespace,
      { ...filter, status: actionable },
      Math.min(batchSize, maxChanges - changed),
      cursor,
    );
    if (page.rows.length === 0) break;
    const done = await deps.control.changeMany(
      namespace,
      page.rows.map((t) => t.id),
      actionable,
      (task) => planAction(task, action, deps.now()),
    );
    changed += done.length;
    skipped += page.rows.length - done.length;
    if (!page.next) return { changed, skipped, more: false };
    cursor = page.next;
  }
  const rest = await deps.control.list(namespace, { ...filter, status: actionable }, 1, cursor);
  return { changed, skipped, more: rest.rows.length > 0 };
}

/**
 * GET /tasks/actions/preview: what POST /tasks/actions would change and skip if sent now, from
 * two counts, changing nothing; the dashboard's confirmation says these numbers before it acts.
 * Tasks that change status between the two calls make the real figures differ.
 */
export async function previewBulkAction(
  deps: Pick<ControlDeps, "control">,
  namespace: string,
  action: ControlAction,
  filter: TaskFilter,
): Promise<BulkResult> {
  const legal: readonly string[] = TRANSITIONS[action].from;
  const actionable = (filter.status ?? TRANSITIONS[action].from).filter((s) => legal.includes(s));
  const selected = await deps.control.count(namespace, filter);
  const changeable =
    actionable.length === 0 ? 0 : await deps.control.count(namespace, { ...filter, status: [...actionable] });
  return {
    changed: Math.min(changeable, BULK_MAX_CHANGES),
    skipped: selected - changeable,
    more: changeable > BULK_MAX_CHANGES,
  };
}
