import type { AuditEntry } from "../audit/audit.js";
import type { QueueDispatch, TmeEvent } from "../events/event.js";
import type { Task } from "./task.js";
import type { WaitingFacts } from "./waiting-reason.js";

/** A task about to be stored: everything but the timestamps the database sets. */
export type NewTask = Omit<
  Task,
  | "created_at"
  | "updated_at"
  | "started_at"
  | "finished_at"
  | "lease_owner"
  | "lease_expires_at"
  | "progress"
  | "result"
  | "error"
>;

/**
 * A task as stored, with the queue around it as the statement that stored it saw it (open runs,
 * paused types, live workers): the facts of its waiting_reason but for its place in the line,
 * which is read apart and only when the task has one (hasQueuePlace).
 */
export interface StoredTask {
  task: Task;
  waiting: WaitingFacts;
}

/** Port: where tasks live. The Postgres adapter is functions/adapters/postgres/task-repository.ts. */
export interface TaskStore {
  /**
   * Stores the task, its task.created event, its queue signal and, when given, the audit row of
   * the request that made it, all in one commit. A returned task is committed.
   */
  insert(task: NewTask, created: TmeEvent, dispatch: QueueDispatch, audit?: AuditEntry): Promise<StoredTask>;
  get(namespace: string, id: string): Promise<Task | undefined>;
}
