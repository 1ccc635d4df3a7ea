import type { AuditEntry } from "../../core/audit/audit.js";
import type { QueueDispatch, TmeEvent } from "../../core/events/event.js";
import { noObserver, type Observer } from "../../core/observability/observer.js";
import type { Task } from "../../core/tasks/task.js";
import type { NewTask, TaskStore } from "../../core/tasks/task-store.js";
import { appendAudit } from "./audit-repository.js";
import type { Db, Queryable } from "./database.js";
import { writeEvent, writeQueueSignal } from "./event-writer.js";

/** Every column of tasks, in the shape of Task; pg returns timestamptz as Date and jsonb parsed. */
export const TASK_COLUMNS = `id, namespace, name, description, command, handler, params, status, priority, attempt,
  series, max_attempts, timeout_seconds, progress, result, error, schedule_id, labels, run_at, created_at,
  updated_at, started_at, finished_at, lease_owner, lease_expires_at, infra_retries, trace_context`;

export class PostgresTaskStore implements TaskStore {
  constructor(
    private readonly db: Db,
    private readonly observer: Observer = noObserver,
  ) {}

  async insert(task: NewTask, created: TmeEvent, dispatch: QueueDispatch, audit?: AuditEntry): Promise<Task> {
    // Read here, in the creating request's context, so its attempts can join its trace.
    const traceContext = task.trace_context ?? this.observer.traceContext();
    const stored = await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<Task>(
        `INSERT INTO tasks (id, namespace, name, description, command, handler, params, status, priority, attempt,
           series, max_attempts, timeout_seconds, schedule_id, labels, run_at, created_at, updated_at, trace_context)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18)
         RETURNING ${TASK_COLUMNS}`,
        [
          task.id,
          task.namespace,
          task.name,
          task.description,
          task.command,
          task.handler,
          JSON.stringify(task.params),
          task.status,
          task.priority,
          task.attempt,
          task.series,
          task.max_attempts,
          task.timeout_seconds,
          task.schedule_id,
          JSON.stringify(task.labels),
          task.run_at,
          created.occurred_at,
          traceContext,
        ],
      );
      await writeEvent(tx, created, task.id);
      await writeQueueSignal(tx, task.namespace, dispatch);
      // Last: audit_append holds the chain head's lock until this commits.
      if (audit) await appendAudit(tx, [audit]);
      return rows[0]!;
    });
    this.observer.taskCreated(stored);
    return stored;
  }

  async get(namespace: string, id: string): Promise<Task | undefined> {
    const rows = await this.db.rows<Task>(
      `SELECT ${TASK_COLUMNS} FROM tasks WHERE namespace = $1 AND id = $2`,
      [namespace, id],
    );
    return rows[0];
  }
}

/** The stored traceparent of a task (null when none, or when the task is gone). */
export async function traceContextOf(db: Queryable, taskId: string): Promise<string | null> {
  const { rows } = await db.query<{ trace_context: string | null }>(
    "SELECT trace_context FROM tasks WHERE id = $1",
    [taskId],
  );
  return rows[0]?.trace_context ?? null;
}
