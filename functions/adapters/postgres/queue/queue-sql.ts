/**
 * The definitions every queue operation shares (claim, complete, heartbeat, reap, promote, and
 * the waiting_reason facts): what is claimable, in which order, what holds a slot, and which
 * attempt a write belongs to. Each is written once here so the operations cannot drift apart.
 * Fragments expect the tasks table aliased `t` (and task_runs aliased `r` where they say so).
 */

/** The series may make another attempt (runs lost to infrastructure do not count): core hasAttemptLeft. */
export const ATTEMPT_LEFT = "t.attempt - t.infra_retries < t.max_attempts";

/**
 * The only ways a claim picks a task: queued, due at `time` (an SQL expression), with an attempt
 * left, and its type not paused in its namespace.
 */
export function claimableAt(time: string): string {
  return `t.status = 'queued' AND t.run_at <= ${time} AND ${ATTEMPT_LEFT}
  AND NOT EXISTS (SELECT 1 FROM task_type_pauses p WHERE p.namespace = t.namespace AND p.name = t.name)`;
}

/** What a claim may pick now (claimableAt). */
export const CLAIMABLE = claimableAt("now()");

/**
 * Claim order within a namespace: higher priority first, then older run_at; the id breaks ties so
 * the order is total. Across namespaces the line is fair (fairLine).
 */
export const CLAIM_ORDER = "t.priority DESC, t.run_at, t.id";

/** The fair order of fairLine's rows (aliased `l`). */
export const FAIR_ORDER = "l.priority DESC, l.turn, l.run_at, l.id";

/**
 * A slot of a task type is an open run (finished_at IS NULL), not a task in status running: a
 * cancelled task's command may take a kill grace to die and holds its slot until it has, and a
 * finished attempt holds it until its completion is committed.
 *
 * Each open run finds its task by id (LATERAL ... LIMIT 1): open runs are few (the slots of the
 * live workers), tasks may be millions. As a plain join, statistics older than a burst of creates
 * had the planner loop over every task and scan the open runs for each (17 ms a call with 190
 * tasks, on every create's waiting_reason), or hash-join a scan of all tasks.
 */
export const OPEN_RUNS = `task_runs r
  CROSS JOIN LATERAL (SELECT t.id, t.namespace, t.name FROM tasks t WHERE t.id = r.task_id LIMIT 1) t
  WHERE r.finished_at IS NULL`;

/**
 * The CTEs fairLine reads, for a statement's WITH RECURSIVE: the namespaces that have queued
 * tasks, by a loose scan (one index probe per namespace, not a read of every queued row), and the
 * slots each holds. The open runs are counted once, grouped by namespace, and joined (MATERIALIZED:
 * inlined, the count ran once per row of the line, 160 scans of the open runs per claim, 63 ms a
 * claim during a drain; counted once per namespace, a claim with 1000 namespaces and 50 open runs
 * read the open runs 1000 times, 206 ms of its 244).
 */
export const FAIR_LINE_CTES = `queued_namespaces AS (
  (SELECT t.namespace FROM tasks t WHERE t.status = 'queued' ORDER BY t.namespace LIMIT 1)
  UNION ALL
  SELECT (SELECT t.namespace FROM tasks t WHERE t.status = 'queued' AND t.namespace > q.namespace
          ORDER BY t.namespace LIMIT 1)
  FROM queued_namespaces q WHERE q.namespace IS NOT NULL),
open_runs_by_namespace AS MATERIALIZED (
  SELECT t.namespace, count(*) AS running FROM ${OPEN_RUNS} GROUP BY t.namespace),
namespace_slots AS MATERIALIZED (
  SELECT q.namespace, coalesce(o.running, 0) AS running
  FROM queued_namespaces q LEFT JOIN open_runs_by_namespace o ON o.namespace = q.namespace
  WHERE q.namespace IS NOT NULL)`;

/**
 * The first `limit` tasks of the line, fair between namespaces. Priority comes first, whatever
 * the namespace. Among tasks of one priority the namespaces take turns by the slots they hold: a
 * task's `turn` is its place among its namespace's tasks of that priority plus the namespace's
 * running tasks (open runs), and the lowest turn goes first (then the oldest). So a namespace that
 * queued a burst of ten thousand, and holds every slot, does not keep another's single task of
 * the same priority behind all of them: that task is next. Within a namespace this is
 * CLAIM_ORDER, so the line's first `limit` are among the first `limit` of each namespace: each
 * namespace's line is walked that far (tasks_queue_namespace_idx) and the walks merged.
 *
 * `columns` are the columns of tasks `t` wanted (with namespace, priority, run_at and id); each
 * row also gets `turn`. `where` is the condition on `t` (the claimable one). Nothing is locked:
 * to take tasks from the line, lockFairLine. Needs FAIR_LINE_CTES in the statement's WITH RECURSIVE.
 */
export function fairLine(options: { columns: string; where: string; limit: string }): string {
  return `SELECT l.* FROM (
    SELECT w.*, n.running + row_number() OVER (PARTITION BY w.namespace, w.priority ORDER BY w.run_at, w.id) AS turn
    FROM namespace_slots n CROSS JOIN LATERAL (
      SELECT ${options.columns} FROM tasks t
      WHERE t.namespace = n.namespace AND ${options.where}
      ORDER BY ${CLAIM_ORDER} LIMIT ${options.limit}) w) l
  ORDER BY ${FAIR_ORDER} LIMIT ${options.limit}`;
}

/**
 * The first `limit` tasks of the fair line that no other transaction holds, locked for this one
 * (FOR UPDATE SKIP LOCKED), in the line's order, each with its `turn`. The line is read unlocked
 * over its first `reach` tasks, then its rows are locked in order until `limit` are held: a claim
 * locks only what it keeps. (Locking inside each namespace's walk locked `limit` rows of every
 * namespace, so a second claimer found the heads of every namespace held and came up short, or
 * took a lower priority than the one left locked and unclaimed.) `reach` is how far past the
 * rows other claimers hold a claim may look: a claim that finds its whole reach held comes up
 * short, as if the queue were empty, and waits for its next wake-up.
 *
 * `where` is checked again on the locked row (a row changed by a transaction that committed
 * meanwhile is read anew under its lock). Needs FAIR_LINE_CTES in the statement's WITH RECURSIVE.
 */
export function lockFairLine(options: {
  columns: string;
  where: string;
  limit: string;
  reach: string;
}): string {
  return `SELECT ${options.columns}, l.turn FROM (${fairLine({
    columns: "t.id, t.namespace, t.priority, t.run_at",
    where: options.where,
    limit: options.reach,
  })}) l
  JOIN tasks t ON t.id = l.id
  WHERE ${options.where}
  ORDER BY ${FAIR_ORDER}
  LIMIT ${options.limit} FOR UPDATE OF t SKIP LOCKED`;
}

/** Open runs per name, for the names in the text[] expression `names`: rows (name, open). */
export function openRunsByName(names: string): string {
  return `SELECT t.name, count(*)::int AS open FROM ${OPEN_RUNS} AND t.name = ANY(${names}) GROUP BY t.name`;
}

/** The advisory lock key that serialises the claims of one limited task type (a name expression). */
export function typeLockKey(name: string): string {
  return `hashtext('tme.task_type:' || ${name})`;
}

// Which attempt a write belongs to: a worker whose lease was taken over (the reaper presumed it
// dead) or whose task was cancelled or restarted matches nothing, so a late write changes nothing.
// $1 task id, $2 worker id, $3 series, $4 attempt.
export const FENCE = `id = $1 AND status = 'running' AND lease_owner = $2 AND series = $3 AND attempt = $4`;

/**
 * Settings of a transaction (Db.transaction's `settings`) whose statements read the queue in
 * claim order: sorts off for the planner. They must walk tasks_queue_namespace_idx in claim order and stop
 * at the limit; but right after a burst of creates the table's statistics still describe a nearly
 * empty queue (autovacuum analyses a minute later at the soonest), the planner believes a few
 * rows match and sorts every queued row instead (25 ms per claim with 10,000 queued, against
 * 0.3 ms; the waiting_reason line and the pages of GET /tasks alike). JIT off too: a plan that must
 * sort anyway costs 1e10 with sorts off, and a cost that high makes the server JIT-compile the
 * statement (measured: 1.5 s of compiling for a 1 ms query). The claim statement itself plans
 * the same either way (EXPLAIN ANALYZE of 500 claims, with and without a limited type: 22-25 ms
 * both), so a claim's whole transaction runs with these settings.
 */
export const SORT_FREE: Readonly<Record<string, string>> = { enable_sort: "off", jit: "off" };

/** Errors and messages stored on tasks and runs are cut to this. */
export const MAX_ERROR_BYTES = 16_384;

/** A JSON.stringify replacer for jsonb parameters: NUL characters (which jsonb refuses) become U+FFFD. */
export function sanitizeReplacer(_key: string, value: unknown): unknown {
  return typeof value === "string" && value.includes("\u0000") ? value.replaceAll("\u0000", "\uFFFD") : value;
}

/** JSON for a jsonb parameter, NUL characters replaced (sanitizeReplacer). */
export function sanitizeJson(value: unknown): string {
  return JSON.stringify(value ?? null, sanitizeReplacer);
}
