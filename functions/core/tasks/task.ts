/** A task as stored: the state of one unit of work and its current attempt series. */
export const TASK_STATUSES = [
  "queued",
  "paused",
  "running",
  "retrying",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/**
 * The statuses a task's series ends in: nothing runs it again until a restart. The repositories
 * pass this list to SQL as a task_status[] parameter; migration 0001's CHECK
 * finished_has_time repeats it (a CHECK cannot take a parameter).
 */
export const FINISHED_STATUSES = [
  "failed",
  "timed_out",
  "cancelled",
  "succeeded",
] as const satisfies readonly TaskStatus[];
export type FinishedStatus = (typeof FINISHED_STATUSES)[number];

/** Statuses in which a task waits to be claimed, so a new run_at means something. */
export const WAITING_STATUSES: readonly TaskStatus[] = ["queued", "paused", "retrying"];

/**
 * Every other status: the task waits or runs, so it may still run. Passed to SQL as an array
 * like FINISHED_STATUSES; the partial indexes of migrations 0004 and 0060 repeat it.
 */
export const UNFINISHED_STATUSES: readonly TaskStatus[] = [...WAITING_STATUSES, "running"];

export interface TaskProgress {
  percent: number;
  message?: string;
}

export interface Task {
  id: string;
  namespace: string;
  name: string;
  description: string | null;
  command: string | null;
  /** The plugin that runs it ("shell" for plain commands). */
  handler: string;
  params: Record<string, unknown>;
  status: TaskStatus;
  priority: number;
  /** Attempt number within the current series; 0 until first claimed. */
  attempt: number;
  /** How many times the task was restarted; each restart begins a new series of attempts. */
  series: number;
  max_attempts: number;
  /** Runs of this series lost to infrastructure (not counted against max_attempts). */
  infra_retries: number;
  timeout_seconds: number;
  progress: TaskProgress | null;
  result: unknown;
  error: string | null;
  schedule_id: string | null;
  labels: Record<string, string>;
  run_at: Date;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  /** The traceparent of the request that created the task, when tracing was on. */
  trace_context?: string | null;
}

/** Attempts that count against max_attempts: runs lost to infrastructure do not. */
export function countedAttempts(task: Pick<Task, "attempt" | "infra_retries">): number {
  return task.attempt - (task.infra_retries ?? 0);
}

/**
 * Whether the series may make another attempt. The claim's SQL says the same in ATTEMPT_LEFT
 * (adapters/postgres/queue/queue-sql.ts).
 */
export function hasAttemptLeft(task: Pick<Task, "attempt" | "infra_retries" | "max_attempts">): boolean {
  return countedAttempts(task) < task.max_attempts;
}

/** The dates of a task, which the API shows as ISO strings. */
type TaskDate = "run_at" | "created_at" | "updated_at" | "started_at" | "finished_at";

/**
 * The task as the API shows it (API.md "Task object fields"): the stored task with its id also as
 * task_id and its dates as ISO strings, without the series, the worker's lease or the trace context.
 */
export type TaskView = Omit<
  Task,
  TaskDate | "series" | "lease_owner" | "lease_expires_at" | "trace_context"
> & {
  task_id: string;
  created_at: string;
  updated_at: string;
  run_at: string;
  started_at: string | null;
  finished_at: string | null;
};

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toTaskView(task: Task): TaskView {
  return {
    id: task.id,
    task_id: task.id,
    namespace: task.namespace,
    name: task.name,
    description: task.description,
    command: task.command,
    handler: task.handler,
    params: task.params,
    status: task.status,
    priority: task.priority,
    attempt: task.attempt,
    max_attempts: task.max_attempts,
    infra_retries: task.infra_retries ?? 0,
    timeout_seconds: task.timeout_seconds,
    progress: task.progress,
    result: task.result ?? null,
    error: task.error,
    schedule_id: task.schedule_id,
    labels: task.labels,
    created_at: task.created_at.toISOString(),
    updated_at: task.updated_at.toISOString(),
    run_at: task.run_at.toISOString(),
    started_at: iso(task.started_at),
    finished_at: iso(task.finished_at),
  };
}
