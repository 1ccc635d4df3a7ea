import type { AuditEntry } from "../../core/audit/audit.js";
import { QUEUE_DISPATCH, type QueueDispatch, type TmeEvent } from "../../core/events/event.js";
import { withFields } from "../../core/objects.js";
import { noObserver, type Observer } from "../../core/observability/observer.js";
import type { Task } from "../../core/tasks/task.js";
import type { NewTask, StoredTask, TaskStore } from "../../core/tasks/task-store.js";
import { Database, type Db, type Queryable } from "./database.js";
import {
  goesToBus,
  type QueueSignalRoute,
  TASK_EVENTS_CHANNEL,
  TASK_QUEUED_CHANNEL,
} from "./event-writer.js";
import { GroupCommit } from "./group-commit.js";
import { OUTBOX_CHANNEL } from "./outbox-repository.js";
import { type QueueFactsRow, queueFactsOf, queueFactsSelect } from "./waiting-facts-sql.js";

/** Every column of tasks, in the shape of Task; pg returns timestamptz as Date and jsonb parsed. */
export const TASK_COLUMNS = `id, namespace, name, description, command, handler, params, status, priority, attempt,
  series, max_attempts, timeout_seconds, progress, result, error, schedule_id, labels, run_at, created_at,
  updated_at, started_at, finished_at, lease_owner, lease_expires_at, infra_retries, trace_context`;

/** TASK_COLUMNS qualified by the alias `t`, for statements that join tasks to other rows. */
export const TASK_COLUMNS_T = TASK_COLUMNS.split(",")
  .map((c) => `t.${c.trim()}`)
  .join(", ");

/** One create as the statement takes it: the task, its task.created event, its queue signal. */
interface CreateRow {
  task: NewTask & { trace_context: string | null };
  created: TmeEvent;
  dispatch: QueueDispatch;
  audit: AuditEntry | undefined;
}

/**
 * Creates tasks in one statement, whatever their number, and so in one commit: the tasks,
 * their task.created events (task_events and the outbox), their queue signals (outbox rows on
 * the "outbox" route), the audit rows of the requests that made them, and the NOTIFYs that wake
 * the workers, the event stream and, when outbox rows were written, the relay. Nothing of a create is written after its commit, so a 201 never
 * follows a write that could still fail (a full disk refuses the whole statement).
 *
 * The queue facts of the tasks' waiting_reason (open runs, paused types, live workers) are read in
 * the same statement, so a create's answer needs no second query unless a task has a place in
 * the line (StoredTask).
 *
 * One INSERT writes both kinds of outbox row, so each task's event precedes its signal.
 * Data-modifying CTEs all run whether or not the outer query reads them; the SELECT ones
 * (audit_append, pg_notify) run only when read, hence the scalar subqueries at the end.
 */
/**
 * The payload of the create's wake-up: the task types created, as a JSON array of typeKey()
 * pairs [namespace, name], so that a worker pool can pass over a wake-up about paused types only
 * (a paused type with a backlog would otherwise make every create scan that backlog in a claim
 * that takes nothing). Empty, which wakes every pool, when it would not fit a NOTIFY payload.
 */
const QUEUED_TYPES_PAYLOAD = `(SELECT CASE WHEN length(p) <= 4000 THEN p ELSE '' END
  FROM (SELECT jsonb_agg(DISTINCT jsonb_build_array(namespace, name))::text AS p FROM input) types)`;

const CREATE_TASKS_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(
    ord integer, id text, namespace text, name text, description text, command text, handler text,
    params jsonb, status task_status, priority smallint, attempt integer, series integer,
    max_attempts integer, timeout_seconds integer, schedule_id text, labels jsonb, run_at timestamptz,
    created_at timestamptz, trace_context text, event jsonb, dispatch jsonb)
),
created AS (
  INSERT INTO tasks (id, namespace, name, description, command, handler, params, status, priority, attempt,
    series, max_attempts, timeout_seconds, schedule_id, labels, run_at, created_at, updated_at, trace_context)
  SELECT id, namespace, name, description, command, handler, params, status, priority, attempt,
    series, max_attempts, timeout_seconds, schedule_id, labels, run_at, created_at, created_at, trace_context
  FROM input ORDER BY ord
  RETURNING ${TASK_COLUMNS}
),
history AS (
  INSERT INTO task_events (event_id, namespace, task_id, type, data, occurred_at)
  SELECT event->>'id', namespace, id, event->>'type', event->'data', created_at FROM input ORDER BY ord
),
relayed AS (
  INSERT INTO outbox (event_id, namespace, type, payload, next_attempt_at)
  SELECT o.event_id, o.namespace, o.type, o.payload, o.next_attempt_at FROM (
    SELECT ord, 0 AS part, event->>'id' AS event_id, namespace, event->>'type' AS type, event AS payload,
      created_at AS next_attempt_at FROM input WHERE ${goesToBus("input.namespace", "input.event->>'type'")}
    UNION ALL
    SELECT ord, 1, 'q_' || id || '_' || md5(random()::text), namespace, $2, dispatch, run_at
    FROM input WHERE $3::boolean
  ) o ORDER BY o.ord, o.part
  RETURNING 1
),
audited AS (
  SELECT audit_append($4::jsonb) AS head WHERE jsonb_array_length($4::jsonb) > 0
),
woken AS (
  SELECT pg_notify($5, ${QUEUED_TYPES_PAYLOAD}), pg_notify($7, ''),
    (SELECT pg_notify($6, '') WHERE EXISTS (SELECT 1 FROM relayed))
)
SELECT ${TASK_COLUMNS}, (SELECT count(*) FROM audited) AS audited, (SELECT count(*) FROM woken) AS woken,
  (SELECT to_jsonb(f) FROM (
    SELECT ${queueFactsSelect("ARRAY(SELECT DISTINCT name FROM input)", "(SELECT DISTINCT namespace, name FROM input) AS asked")}
  ) f) AS facts
FROM created`;

async function insertTasks(db: Queryable, rows: CreateRow[], route: QueueSignalRoute): Promise<StoredTask[]> {
  // jsonb_to_recordset reads the columns CREATE_TASKS_SQL names and ignores the task's other fields.
  const input = rows.map(({ task, created, dispatch }, ord) =>
    withFields(task, { ord, created_at: created.occurred_at, event: created, dispatch }),
  );
  const audit = rows.flatMap((r) => (r.audit ? [r.audit] : []));
  type CreatedRow = Task & { audited: number; woken: number; facts: QueueFactsRow };
  const { rows: stored } = await db.query<CreatedRow>(CREATE_TASKS_SQL, [
    JSON.stringify(input),
    QUEUE_DISPATCH,
    route === "outbox",
    JSON.stringify(audit),
    TASK_QUEUED_CHANNEL,
    OUTBOX_CHANNEL,
    TASK_EVENTS_CHANNEL,
  ]);
  const waiting = queueFactsOf(stored[0]!.facts);
  const byId = new Map(
    stored.map(({ audited: _a, woken: _w, facts: _f, ...task }) => [task.id, task as Task]),
  );
  return rows.map((r) => ({ task: byId.get(r.task.id)!, waiting }));
}

export interface TaskStoreOptions {
  /** Whether queue signals get outbox rows (the cloud) or only a NOTIFY (local). */
  queueSignals: QueueSignalRoute;
}

export class PostgresTaskStore implements TaskStore {
  /**
   * On the pool, concurrent creates share a statement and a commit (group commit). Inside an
   * open transaction (an Idempotency-Key request, a schedule's firing) a create is its own
   * statement in that transaction.
   */
  private readonly creates: GroupCommit<CreateRow, StoredTask> | undefined;
  /** Lookups by id of concurrent requests, one query per batch (on the pool). */
  private readonly reads: GroupCommit<{ namespace: string; id: string }, Task | undefined> | undefined;

  constructor(
    private readonly db: Db,
    private readonly observer: Observer = noObserver,
    private readonly options: TaskStoreOptions = { queueSignals: "outbox" },
  ) {
    this.creates =
      db instanceof Database
        ? new GroupCommit((rows) => insertTasks(db, rows, options.queueSignals), {
            maxBatch: 200,
            maxInFlight: 2,
          })
        : undefined;
    this.reads =
      db instanceof Database
        ? new GroupCommit((keys) => this.getMany(keys), { maxBatch: 200, maxInFlight: 4 })
        : undefined;
  }

  async insert(
    task: NewTask,
    created: TmeEvent,
    dispatch: QueueDispatch,
    audit?: AuditEntry,
  ): Promise<StoredTask> {
    // Read here, in the creating request's context, so its attempts can join its trace.
    const traceContext = task.trace_context ?? this.observer.traceContext() ?? null;
    const row: CreateRow = {
      task: withFields(task, { trace_context: traceContext }),
      created,
      dispatch,
      audit,
    };
    const stored = this.creates
      ? await this.creates.submit(row)
      : (await insertTasks(this.db, [row], this.options.queueSignals))[0]!;
    this.observer.taskCreated(stored.task);
    return stored;
  }

  get(namespace: string, id: string): Promise<Task | undefined> {
    return this.reads
      ? this.reads.submit({ namespace, id })
      : this.getMany([{ namespace, id }]).then(([t]) => t);
  }

  private async getMany(keys: Array<{ namespace: string; id: string }>): Promise<Array<Task | undefined>> {
    const rows = await this.db.rows<Task>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::text[])`, [
      keys.map((k) => k.id),
    ]);
    const byId = new Map(rows.map((t) => [t.id, t]));
    // Another namespace's task is not found (as if the id did not exist).
    return keys.map((k) => {
      const task = byId.get(k.id);
      return task && task.namespace === k.namespace ? task : undefined;
    });
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
