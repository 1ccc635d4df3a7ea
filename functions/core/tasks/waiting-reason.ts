import type { Task } from "./task.js";

/**
 * What the queue looks like around a set of tasks, gathered in a few queries per page of tasks
 * (never one per task) by the store: TaskControlStore.waitingFacts.
 */
export interface WaitingFacts {
  /** Running tasks (open runs) across every namespace and every worker. */
  runningTotal: number;
  /**
   * The local worker processes alive in `workers` and their slots summed (MAX_CONCURRENT_TASKS
   * is per process). None registered: the cloud, where MAX_CONCURRENT_TASKS is the worker
   * Lambda's reserved concurrency and so the one limit for all.
   */
  workers: { count: number; slots: number };
  /** Running tasks by task name, for the names asked about. */
  runningByName: ReadonlyMap<string, number>;
  /** "namespace\u0000name" of paused task types, for the types asked about. */
  pausedTypes: ReadonlySet<string>;
  /** For each due queued task asked about: claimable tasks ahead of it in claim order, capped. */
  aheadByTaskId: ReadonlyMap<string, number>;
}

export interface WaitingLimits {
  /** MAX_CONCURRENT_TASKS: one process's slots, or the cloud worker's reserved concurrency. */
  maxConcurrent: number;
  /** The per-type limit from task_plugins.yaml (undefined: none). */
  concurrencyOf(name: string): number | undefined;
}

/**
 * Counting the queue ahead of a task stops here: an operator needs "a lot", not the exact
 * figure. A page reads this many rows of the queue at most, once (10,000 took 60 ms per page
 * on a busy 2-core machine with 100,000 queued; 1,000 takes a tenth of it).
 */
export const AHEAD_COUNT_CAP = 1_000;

export function pausedTypeKey(namespace: string, name: string): string {
  return `${namespace}\u0000${name}`;
}

/**
 * Whether waiting_reason needs the task's place in the line (WaitingFacts.aheadByTaskId): queued,
 * due, its type not paused, and no limit holding it (a limit is the reason then, whatever its
 * place). Only then is the line worth reading: a create answered while every slot is busy needs
 * no second query.
 */
export function hasQueuePlace(task: Task, facts: WaitingFacts, limits: WaitingLimits, now: Date): boolean {
  return (
    task.status === "queued" &&
    task.run_at.getTime() <= now.getTime() &&
    !facts.pausedTypes.has(pausedTypeKey(task.namespace, task.name)) &&
    limitHolding(task, facts, limits) === null
  );
}

/** The limit that keeps a queued, due task waiting, as its waiting_reason says it; null when none. */
function limitHolding(task: Task, facts: WaitingFacts, limits: WaitingLimits): string | null {
  const typeLimit = limits.concurrencyOf(task.name);
  const runningOfType = facts.runningByName.get(task.name) ?? 0;
  if (typeLimit !== undefined && runningOfType >= typeLimit) {
    return `concurrency limit of ${task.name} reached (${runningOfType} of ${typeLimit} running)`;
  }
  const { count: workers, slots } = facts.workers;
  if (workers > 0 && facts.runningTotal >= slots) {
    return `all worker slots busy (${facts.runningTotal} running, ${slots} slots across ${workers} ${workers === 1 ? "worker" : "workers"})`;
  }
  if (workers === 0 && facts.runningTotal >= limits.maxConcurrent) {
    return `all worker slots busy (${facts.runningTotal} running, ${limits.maxConcurrent} slots: MAX_CONCURRENT_TASKS)`;
  }
  return null;
}

/**
 * Why a task is not running, in the order an operator can act on it: held by someone, then not
 * due yet, then a limit, then simply its place in the queue. Null for running and finished tasks.
 */
export function waitingReason(
  task: Task,
  facts: WaitingFacts,
  limits: WaitingLimits,
  now: Date,
): string | null {
  switch (task.status) {
    case "paused":
      return "paused";
    case "retrying":
      return `retrying at ${task.run_at.toISOString()}`;
    case "queued":
      break;
    default:
      return null;
  }
  if (facts.pausedTypes.has(pausedTypeKey(task.namespace, task.name))) return "task type paused";
  if (task.run_at.getTime() > now.getTime()) return `scheduled for ${task.run_at.toISOString()}`;

  const held = limitHolding(task, facts, limits);
  if (held !== null) return held;
  const ahead = facts.aheadByTaskId.get(task.id) ?? 0;
  const count = ahead >= AHEAD_COUNT_CAP ? `more than ${AHEAD_COUNT_CAP}` : String(ahead);
  const place =
    ahead === 0
      ? "next in queue, waiting for a free worker"
      : `queued behind ${count} ${ahead === 1 ? "task" : "tasks"} of higher or equal priority`;
  // A task handed back by a lost worker says so: its attempts were not spent, its infra budget was.
  return task.infra_retries > 0 && task.attempt > 0
    ? `${place} (handed back after its worker was lost: ${task.infra_retries} infrastructure ${task.infra_retries === 1 ? "retry" : "retries"}, not counted against max_attempts)`
    : place;
}
