import { QUEUE_DISPATCH } from "../../core/events/event.js";
import type { TaskChange } from "../../core/tasks/control-plan.js";
import type { Task, TaskStatus } from "../../core/tasks/task.js";
import type {
  TaskControlStore,
  TaskEventRecord,
  TaskFilter,
  TaskPage,
  TaskRun,
  TaskTypeSummary,
} from "../../core/tasks/task-control-store.js";
import { AHEAD_COUNT_CAP, type WaitingFacts } from "../../core/tasks/waiting-reason.js";
import { Database, type Db, PLAN_PER_CALL, type Queryable } from "./database.js";
import {
  notifyTaskControl,
  type QueueSignalRoute,
  TASK_QUEUED_CHANNEL,
  wakeWorkers,
  writeQueueSignals,
  writeTaskEvents,
} from "./event-writer.js";
import { GroupCommit } from "./group-commit.js";
import { type Keyset, keysetPage } from "./keyset.js";
import { OUTBOX_CHANNEL } from "./outbox-repository.js";
import {
  CLAIM_ORDER,
  claimableAt,
  FAIR_LINE_CTES,
  FAIR_ORDER,
  fairLine,
  SORT_FREE,
} from "./queue/queue-sql.js";
import { TASK_COLUMNS, TASK_COLUMNS_T } from "./task-repository.js";
import { type QueueFactsRow, queueFactsOf, queueFactsSelect } from "./waiting-facts-sql.js";

/** The WHERE clause of a filter, with its parameters numbered from `first`. */
function filterSql(namespace: string, filter: TaskFilter, first = 1): { where: string; values: unknown[] } {
  const values: unknown[] = [namespace];
  const clauses = [`namespace = $${first}`];
  const add = (sql: (n: string) => string, value: unknown) => {
    values.push(value);
    clauses.push(sql(`$${first + values.length - 1}`));
  };
  // One status as an equality: tasks_status_idx then gives the page's order (an = ANY does not).
  if (filter.status?.length === 1) add((p) => `status = ${p}::task_status`, filter.status[0]);
  else if (filter.status) add((p) => `status = ANY(${p}::task_status[])`, filter.status);
  if (filter.name !== undefined) add((p) => `name = ${p}`, filter.name);
  if (filter.labels && Object.keys(filter.labels).length > 0) {
    // jsonb containment: served by the GIN index tasks_labels_idx (jsonb_path_ops), which holds
    // only labelled tasks (migration 0063): the second condition lets the planner use it.
    add((p) => `labels @> ${p}::jsonb AND labels <> '{}'::jsonb`, JSON.stringify(filter.labels));
  }
  if (filter.schedule_id !== undefined) add((p) => `schedule_id = ${p}`, filter.schedule_id);
  if (filter.created_after) add((p) => `created_at > ${p}`, filter.created_after);
  if (filter.created_before) add((p) => `created_at < ${p}`, filter.created_before);
  // Which index serves a filter depends on its values (a rare label, a common status): planned
  // per call, never settled on one generic plan.
  return { where: `${clauses.join(" AND ")} ${PLAN_PER_CALL}`, values };
}

/**
 * Writes the planned changes whose tasks still have their expected status: one UPDATE for the
 * whole set, then the events, queue signals and stop notices of the rows it changed, all in
 * the caller's transaction. Lease columns are never written: they belong to the worker.
 */
async function applyChanges(
  tx: Queryable,
  namespace: string,
  changes: TaskChange[],
  route: QueueSignalRoute,
): Promise<Task[]> {
  if (changes.length === 0) return [];
  const rows = changes.map(({ next, expectedStatus }) => ({
    id: next.id,
    expected_status: expectedStatus,
    status: next.status,
    description: next.description,
    priority: next.priority,
    labels: next.labels,
    timeout_seconds: next.timeout_seconds,
    max_attempts: next.max_attempts,
    run_at: next.run_at,
    series: next.series,
    attempt: next.attempt,
    progress: next.progress,
    result: next.result ?? null,
    error: next.error,
    started_at: next.started_at,
    finished_at: next.finished_at,
    updated_at: next.updated_at,
  }));
  const { rows: updated } = await tx.query<Task>(
    `UPDATE tasks t SET status = c.status, description = c.description, priority = c.priority,
       labels = c.labels, timeout_seconds = c.timeout_seconds, max_attempts = c.max_attempts,
       run_at = c.run_at, series = c.series, attempt = c.attempt, progress = c.progress,
       infra_retries = CASE WHEN c.series = t.series THEN t.infra_retries ELSE 0 END,
       result = c.result, error = c.error, started_at = c.started_at, finished_at = c.finished_at,
       updated_at = c.updated_at
     FROM jsonb_to_recordset($1::jsonb) AS c(id text, expected_status task_status, status task_status,
       description text, priority smallint, labels jsonb, timeout_seconds integer, max_attempts integer,
       run_at timestamptz, series integer, attempt integer, progress jsonb, result jsonb, error text,
       started_at timestamptz, finished_at timestamptz, updated_at timestamptz)
     WHERE t.id = c.id AND t.namespace = $2 AND t.status = c.expected_status
     RETURNING ${TASK_COLUMNS_T}`,
    [JSON.stringify(rows), namespace],
  );
  const applied = new Set(updated.map((t) => t.id));
  const done = changes.filter((c) => applied.has(c.next.id));
  await writeTaskEvents(
    tx,
    done.flatMap((c) => (c.event ? [{ event: c.event, taskId: c.next.id }] : [])),
  );
  await writeQueueSignals(
    tx,
    namespace,
    done.flatMap((c) => (c.dispatch ? [c.dispatch] : [])),
    route,
  );
  await notifyTaskControl(
    tx,
    done.filter((c) => c.stopRunning).map((c) => c.next.id),
  );
  const byId = new Map(updated.map((t) => [t.id, t]));
  return done.map((c) => byId.get(c.next.id)!);
}

/**
 * The facts behind waiting_reason for a page of tasks, in one query.
 * - Open runs, as the claim counts slots (a cancelled command still dying holds its slot).
 * - Paused types among those asked about.
 * - Places in the queue, read once per page, not counted once per task: the fair line's first
 *   $6 due tasks of unpaused types (fairLine: each namespace's line walked in its index, stopped
 *   at the cap, and merged), numbered; a task's place is its number there. Read only when a task
 *   of the page has a place (due, its type not paused). Counting per task scanned up to the cap
 *   for every task of the page (50 x 10,000 rows with a deep queue).
 */
const WAITING_FACTS_SQL = `
WITH RECURSIVE ${FAIR_LINE_CTES},
asked AS (SELECT DISTINCT * FROM unnest($2::text[], $3::text[]) AS q(namespace, name)),
paused AS (
  SELECT p.namespace, p.name FROM task_type_pauses p JOIN asked q ON p.namespace = q.namespace AND p.name = q.name
),
placed AS (
  -- The due tasks asked about whose type runs: without one, the line is not read at all.
  SELECT d.id FROM unnest($4::text[], $7::text[], $8::text[]) AS d(id, namespace, name)
  WHERE (d.namespace, d.name) NOT IN (SELECT namespace, name FROM paused)
),
line AS (
  SELECT l.id, (row_number() OVER (ORDER BY ${FAIR_ORDER})) - 1 AS ahead
  FROM (${fairLine({
    columns: "t.id, t.namespace, t.priority, t.run_at",
    where: claimableAt("$5"),
    limit: "CASE WHEN EXISTS (SELECT 1 FROM placed) THEN $6::bigint ELSE 0 END",
  })}) l
)
SELECT ${queueFactsSelect("$1::text[]", "asked")},
  coalesce((SELECT jsonb_object_agg(id, ahead) FROM line WHERE id IN (SELECT id FROM placed)), '{}') AS ahead,
  (SELECT count(*) FROM line) AS line_length`;

export class PostgresTaskControlStore implements TaskControlStore {
  /** The waiting facts of concurrent requests, one query per batch (on the pool). */
  private readonly facts: GroupCommit<{ tasks: readonly Task[]; now: Date }, WaitingFacts> | undefined;

  constructor(
    private readonly db: Db,
    /** Whether queue signals get outbox rows (the cloud) or only a NOTIFY (local). */
    private readonly queueSignals: QueueSignalRoute = "outbox",
  ) {
    this.facts =
      db instanceof Database
        ? new GroupCommit(
            async (asks) => {
              const byId = new Map(asks.flatMap((a) => a.tasks.map((t) => [t.id, t] as const)));
              const now = new Date(Math.max(...asks.map((a) => a.now.getTime())));
              const facts = await this.factsOf([...byId.values()], now);
              return asks.map(() => facts);
            },
            { maxBatch: 100, maxInFlight: 4 },
          )
        : undefined;
  }

  change(namespace: string, id: string, plan: (task: Task) => TaskChange): Promise<Task | undefined> {
    return this.db.transaction(async (tx) => {
      // The row lock makes the plan and the write one step: a worker's claim or completion
      // waits for us (or we for it), and the conditional UPDATE then sees the latest status.
      const { rows } = await tx.query<Task>(
        `SELECT ${TASK_COLUMNS} FROM tasks WHERE namespace = $1 AND id = $2 FOR UPDATE`,
        [namespace, id],
      );
      const task = rows[0];
      if (!task) return undefined;
      const [changed] = await applyChanges(tx, namespace, [plan(task)], this.queueSignals);
      return changed ?? task;
    });
  }

  changeMany(
    namespace: string,
    ids: string[],
    statuses: readonly TaskStatus[],
    plan: (task: Task) => TaskChange | null,
  ): Promise<Task[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.db.transaction(async (tx) => {
      // Locked in id order, so two bulk actions over overlapping sets cannot deadlock.
      const { rows } = await tx.query<Task>(
        `SELECT ${TASK_COLUMNS} FROM tasks
         WHERE namespace = $1 AND id = ANY($2::text[]) AND status = ANY($3::task_status[])
         ORDER BY id FOR UPDATE`,
        [namespace, ids, statuses],
      );
      const changes = rows.flatMap((task) => {
        const change = plan(task);
        return change ? [change] : [];
      });
      return applyChanges(tx, namespace, changes, this.queueSignals);
    });
  }

  async list(namespace: string, filter: TaskFilter, limit: number, after?: Keyset): Promise<TaskPage> {
    const { where, values } = filterSql(namespace, filter);
    const read = (q: Queryable) =>
      keysetPage<Task>(
        q,
        { columns: TASK_COLUMNS, from: "tasks", where, values, column: "created_at" },
        { limit, after },
      );
    // Every filter but labels has an index in page order (tasks_list_idx, tasks_status_idx,
    // tasks_name_idx, tasks_schedule_idx): the page is then read in that order and the read stops
    // at the limit. Statistics older than a burst of creates make the planner believe the table
    // nearly empty and sort every match instead (SORT_FREE: 350 ms against 1 ms a page with
    // 100,000 queued). Labels go through their GIN index, whose matches must be sorted.
    return filter.labels ? read(this.db) : this.db.transaction(read, { settings: SORT_FREE });
  }

  async count(namespace: string, filter: TaskFilter): Promise<number> {
    const { where, values } = filterSql(namespace, filter);
    const rows = await this.db.rows<{ n: number }>(`SELECT count(*) AS n FROM tasks WHERE ${where}`, values);
    return rows[0]?.n ?? 0;
  }

  runs(taskId: string, limit: number, afterId = 0): Promise<TaskRun[]> {
    return this.db.rows<TaskRun>(
      `SELECT id, series, attempt, status, worker_id, exit_code, error, output_tail, output_truncated,
         started_at, finished_at, work_ended_at
       FROM task_runs WHERE task_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [taskId, afterId, limit],
    );
  }

  events(taskId: string, limit: number, afterSeq = 0): Promise<TaskEventRecord[]> {
    return this.db.rows<TaskEventRecord>(
      `SELECT id AS seq, event_id, type, data, occurred_at
       FROM task_events WHERE task_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [taskId, afterSeq, limit],
    );
  }

  /**
   * Concurrent requests (a create's or a get's response each needs the facts of one task) share
   * one query: the facts of the union answer each of them.
   */
  waitingFacts(tasks: readonly Task[], now: Date): Promise<WaitingFacts> {
    if (!this.facts || !tasks.some((t) => t.status === "queued")) return this.factsOf(tasks, now);
    return this.facts.submit({ tasks, now });
  }

  private async factsOf(tasks: readonly Task[], now: Date): Promise<WaitingFacts> {
    const queued = tasks.filter((t) => t.status === "queued");
    const facts: WaitingFacts = {
      runningTotal: 0,
      workers: { count: 0, slots: 0 },
      runningByName: new Map(),
      pausedTypes: new Set(),
      aheadByTaskId: new Map(),
    };
    if (queued.length === 0) return facts;
    // Only due tasks have a place in the queue worth counting (a paused type's are dropped in SQL).
    const dueTasks = queued.filter((t) => t.run_at.getTime() <= now.getTime());
    const due = dueTasks.map((t) => t.id);
    const values = [
      [...new Set(queued.map((t) => t.name))],
      queued.map((t) => t.namespace),
      queued.map((t) => t.name),
      due,
      now,
      AHEAD_COUNT_CAP,
      dueTasks.map((t) => t.namespace),
      dueTasks.map((t) => t.name),
    ];
    type FactsRow = QueueFactsRow & { ahead: Record<string, number>; line_length: number };
    // The line walks each namespace's queue index in claim order, as a claim does, and so has the claim's
    // trouble with stale statistics (SORT_FREE): 150 ms against 1.5 ms with 100,000 queued.
    // Nothing else in the statement sorts. Without a due task the line is not read at all.
    const read = (q: Queryable) => q.query<FactsRow>(WAITING_FACTS_SQL, values).then((r) => r.rows);
    const [row] =
      due.length === 0 ? await read(this.db) : await this.db.transaction(read, { settings: SORT_FREE });
    if (!row) return facts;
    const known = queueFactsOf(row);
    // A due task beyond a full line has at least the cap ahead of it.
    const lineFull = row.line_length >= AHEAD_COUNT_CAP;
    const places = new Map<string, number>();
    for (const id of due) {
      const ahead = row.ahead[id];
      if (ahead !== undefined) places.set(id, ahead);
      else if (lineFull) places.set(id, AHEAD_COUNT_CAP);
    }
    return { ...known, aheadByTaskId: places };
  }

  async taskTypes(namespace: string, limit: number, afterName?: string): Promise<TaskTypeSummary[]> {
    return this.db.rows<TaskTypeSummary>(
      `WITH names AS (
         SELECT name FROM (
           SELECT DISTINCT name FROM tasks WHERE namespace = $1 AND ($2::text IS NULL OR name > $2)
           UNION
           SELECT name FROM task_type_pauses WHERE namespace = $1 AND ($2::text IS NULL OR name > $2)
         ) n ORDER BY name LIMIT $3
       )
       SELECT n.name,
         coalesce((SELECT jsonb_object_agg(status, c) FROM (
           SELECT status, count(*) AS c FROM tasks WHERE namespace = $1 AND name = n.name GROUP BY status
         ) s), '{}') AS counts,
         p.paused_at IS NOT NULL AS paused, p.paused_at
       FROM names n LEFT JOIN task_type_pauses p ON p.namespace = $1 AND p.name = n.name
       ORDER BY n.name`,
      [namespace, afterName ?? null, limit],
    );
  }

  async taskType(namespace: string, name: string): Promise<TaskTypeSummary> {
    const [row] = await this.db.rows<TaskTypeSummary>(
      `SELECT $2::text AS name,
         coalesce((SELECT jsonb_object_agg(status, c) FROM (
           SELECT status, count(*) AS c FROM tasks WHERE namespace = $1 AND name = $2 GROUP BY status
         ) s), '{}') AS counts,
         p.paused_at IS NOT NULL AS paused, p.paused_at
       FROM (SELECT 1) one LEFT JOIN task_type_pauses p ON p.namespace = $1 AND p.name = $2`,
      [namespace, name],
    );
    return row!;
  }

  async pauseType(namespace: string, name: string, pausedBy: string): Promise<void> {
    await this.db.query(
      `INSERT INTO task_type_pauses (namespace, name, paused_by) VALUES ($1, $2, $3)
       ON CONFLICT (namespace, name) DO NOTHING`,
      [namespace, name, pausedBy],
    );
  }

  resumeType(namespace: string, name: string): Promise<void> {
    return this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query("DELETE FROM task_type_pauses WHERE namespace = $1 AND name = $2", [
        namespace,
        name,
      ]);
      if (!rowCount) return;
      // A queue message that arrived while the type was paused was dropped by the claim;
      // a fresh signal per queued task brings every one of them back (SQS in the cloud, a
      // NOTIFY locally), in one statement however many there are.
      const { rowCount: signalled } =
        this.queueSignals === "outbox"
          ? await tx.query(
              `INSERT INTO outbox (event_id, namespace, type, payload, next_attempt_at)
               SELECT 'q_' || id || '_' || md5(random()::text), namespace, $3,
                 jsonb_build_object('task_id', id, 'attempt', attempt + 1, 'priority', priority,
                   'run_at', to_char(run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
                 run_at
               FROM tasks WHERE namespace = $1 AND name = $2 AND status = 'queued'`,
              [namespace, name, QUEUE_DISPATCH],
            )
          : { rowCount: 1 };
      // Always one wake-up, even with nothing queued: a pool that saw the type paused passes over
      // wake-ups about that type's new tasks until a claim of its own finds it resumed.
      await wakeWorkers(tx);
      if (signalled) {
        // Wake-ups, not the work list: a few task ids are enough to get idle workers claiming.
        await tx.query(
          `SELECT pg_notify($1, id) FROM (
             SELECT t.id FROM tasks t WHERE t.namespace = $2 AND t.name = $3 AND t.status = 'queued'
             ORDER BY ${CLAIM_ORDER} LIMIT 100) q`,
          [TASK_QUEUED_CHANNEL, namespace, name],
        );
        if (this.queueSignals === "outbox") await tx.query("SELECT pg_notify($1, '')", [OUTBOX_CHANNEL]);
      }
    });
  }
}
