import type { Keyset, KeysetPage } from "../paging.js";
import type { TaskChange } from "./control-plan.js";
import type { Task, TaskStatus } from "./task.js";
import type { WaitingFacts } from "./waiting-reason.js";

/** The filters of GET /tasks and POST /tasks/actions. Every given filter must hold. */
export interface TaskFilter {
  status?: TaskStatus[];
  name?: string;
  /** Every pair must be among the task's labels. */
  labels?: Record<string, string>;
  schedule_id?: string;
  created_after?: Date;
  created_before?: Date;
}

/** A page of GET /tasks, newest first over (created_at, id); `next` is set when more rows may follow. */
export type TaskPage = KeysetPage<Task>;

/** One attempt of a task (a row of task_runs). */
export interface TaskRun {
  id: number;
  series: number;
  attempt: number;
  status: string;
  worker_id: string;
  exit_code: number | null;
  error: string | null;
  output_tail: string | null;
  output_truncated: boolean;
  started_at: Date;
  finished_at: Date | null;
  /** A lost run: when its worker says its work stopped (null if the worker never said). */
  work_ended_at: Date | null;
}

/** One entry of a task's lifecycle log (a row of task_events). */
export interface TaskEventRecord {
  seq: number;
  event_id: string;
  type: string;
  data: Record<string, unknown>;
  occurred_at: Date;
}

export interface TaskTypeSummary {
  name: string;
  counts: Partial<Record<TaskStatus, number>>;
  paused: boolean;
  paused_at: Date | null;
}

/**
 * Port: what the task API needs beyond create and get. Changes are planned by the core on the
 * locked row and applied conditionally, with their event, queue signal and stop notice in the
 * same transaction. The Postgres adapter is functions/adapters/postgres/task-control-repository.ts.
 */
export interface TaskControlStore {
  /**
   * Locks the task, asks `plan` for the change (plan may throw to refuse), applies it.
   * Undefined when the task does not exist in that namespace.
   */
  change(namespace: string, id: string, plan: (task: Task) => TaskChange): Promise<Task | undefined>;
  /**
   * The bulk form: locks those of `ids` that still have one of `statuses`, plans each
   * (plan returns null to skip), applies all in one transaction. Returns the changed tasks.
   */
  changeMany(
    namespace: string,
    ids: string[],
    statuses: readonly TaskStatus[],
    plan: (task: Task) => TaskChange | null,
  ): Promise<Task[]>;
  /** Newest first: created_at DESC, id DESC. */
  list(namespace: string, filter: TaskFilter, limit: number, after?: Keyset): Promise<TaskPage>;
  count(namespace: string, filter: TaskFilter): Promise<number>;
  runs(taskId: string, limit: number, afterId?: number): Promise<TaskRun[]>;
  events(taskId: string, limit: number, afterSeq?: number): Promise<TaskEventRecord[]>;
  /** Facts about the queue for the waiting tasks among `tasks`, in a fixed number of queries. */
  waitingFacts(tasks: readonly Task[], now: Date): Promise<WaitingFacts>;
  /** Task types of a namespace (names with tasks, and paused names), by name. */
  taskTypes(namespace: string, limit: number, afterName?: string): Promise<TaskTypeSummary[]>;
  taskType(namespace: string, name: string): Promise<TaskTypeSummary>;
  /** Holds every queued task of the type; idempotent. */
  pauseType(namespace: string, name: string, pausedBy: string): Promise<void>;
  /** Releases the type and signals its queued tasks, so workers pick them up at once. */
  resumeType(namespace: string, name: string): Promise<void>;
}
