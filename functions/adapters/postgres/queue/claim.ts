import { claimedTask, startedEvent } from "../../../core/tasks/attempt-plan.js";
import type { Task } from "../../../core/tasks/task.js";
import {
  type ClaimedBatch,
  type ClaimResult,
  type SkipReason,
  typeKey,
} from "../../../core/tasks/task-queue.js";
import type { Db, Queryable } from "../database.js";
import { TASK_EVENTS_CHANNEL, taskEventCtes, taskEventsJson, writeTaskEvents } from "../event-writer.js";
import { OUTBOX_CHANNEL } from "../outbox-repository.js";
import { TASK_COLUMNS, TASK_COLUMNS_T } from "../task-repository.js";
import {
  ATTEMPT_LEFT,
  CLAIMABLE,
  FAIR_LINE_CTES,
  FAIR_ORDER,
  lockFairLine,
  openRunsByName,
  SORT_FREE,
  typeLockKey,
} from "./queue-sql.js";

/** The per-type concurrency limit of a task name (task_plugins.yaml `concurrency`), if any. */
export type LimitOf = (name: string) => number | undefined;

/**
 * The limits of the names a process has met, so the candidate query can pass over the types
 * already at their limit without asking about every name (limits are globs in the config, not a
 * table the database could join). A name not met yet is simply not passed over on its first
 * claim; the limit itself is always checked after the type's lock, whatever this cache says.
 */
export class KnownLimits {
  private readonly names: string[] = [];
  private readonly limits: number[] = [];
  private readonly seen = new Map<string, number | undefined>();

  constructor(private readonly limitOf: LimitOf) {}

  of(name: string): number | undefined {
    if (this.seen.has(name)) return this.seen.get(name);
    const limit = this.limitOf(name);
    this.seen.set(name, limit);
    if (limit !== undefined) {
      this.names.push(name);
      this.limits.push(limit);
    }
    return limit;
  }

  /** The limited names met so far and their limits, as two parallel arrays for unnest(). */
  limited(): [string[], number[]] {
    return [this.names, this.limits];
  }
}

/**
 * How far past the rows other claimers hold a claim looks, in claims (lockFairLine's reach): two
 * processes claiming at once find disjoint tasks; a third may come up short and claim again at
 * its next wake-up (a freed slot, a NOTIFY, the poll).
 */
const CLAIM_REACH = 2;

// $1 worker id, $2 lease seconds. The lease runs on the database's clock (the reaper reads it).
const START = `status = 'running', lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2)`;

/**
 * The limited types already at their limit, among the names given: a claim passes over them.
 * Counting open runs here is only a filter; it may be stale by the time the claim is written, so
 * the claim counts again under the types' locks.
 */
const FULL_TYPES = `
  SELECT l.name FROM unnest($1::text[], $2::int[]) AS l(name, lim)
  JOIN (${openRunsByName("$1::text[]")}) o ON o.name = l.name
  WHERE o.open >= l.lim`;

/**
 * The candidates of one claim: the first of the line no other claimer holds, fair between
 * namespaces, locked for this transaction (lockFairLine; SKIP LOCKED: claimers never wait for
 * each other's rows, and a claim locks only the rows it keeps), passing over the full types ($2);
 * whole rows, since the core plans their claim and task.started from them, each with its `turn` (stripped by claimBatch). Each row also
 * carries the paused types (and a claim that finds nothing gets one row of them alone): a pool
 * that came up short passes over wake-ups about only those (worker-pool.ts), and asking in the
 * same statement saves a round trip on every claim that empties the queue.
 *
 * The full types come as a parameter, from FULL_TYPES run just before, not as a subquery here:
 * the planner cannot see into a subquery's result and guesses it filters out nearly every row, so
 * it sorted the whole queue instead of walking the queue index in claim order and stopping at the
 * limit (21 ms against 0.3 ms per claim with 20,000 queued). With the names as a value it uses
 * the column's statistics (and SORT_FREE covers statistics that are stale).
 */
const CANDIDATES = `
  WITH RECURSIVE ${FAIR_LINE_CTES}
  SELECT l.*, p.paused
  FROM (SELECT coalesce(jsonb_agg(jsonb_build_array(namespace, name)), '[]') AS paused FROM task_type_pauses) p
  LEFT JOIN LATERAL (${lockFairLine({
    columns: TASK_COLUMNS_T,
    where: `${CLAIMABLE} AND t.name <> ALL ($2::text[])`,
    limit: "$1",
    reach: `${CLAIM_REACH} * $1`,
  })}) l ON true
  ORDER BY ${FAIR_ORDER}`;

/**
 * Claims the candidates (in the line's order, $3) that their type's limit leaves room for, as the core
 * planned them: each attempt becomes running with its lease ($4 the planned attempt, $7 its start)
 * and its run row, and its task.started event ($8, planned for every candidate) is written for the
 * claimed ones only. The open runs are counted by this statement, after the types' locks were
 * taken by the one before it, so it sees every claim that committed before this one could lock.
 * It answers only which were claimed and their leases: the rest of each row is the plan.
 */
const CLAIM = `
  WITH pick AS (
    SELECT p.id, p.name, p.attempt, row_number() OVER (PARTITION BY p.name ORDER BY p.pos) AS nth
    FROM unnest($3::text[], $9::text[], $4::int[]) WITH ORDINALITY AS p(id, name, attempt, pos)),
  room AS (
    SELECT l.name, l.lim - COALESCE(o.open, 0) AS room FROM unnest($5::text[], $6::int[]) AS l(name, lim)
    LEFT JOIN (${openRunsByName("$5::text[]")}) o
      ON o.name = l.name),
  claimed AS (
    UPDATE tasks t SET ${START}, attempt = pick.attempt, started_at = $7, updated_at = $7
    FROM pick LEFT JOIN room ON room.name = pick.name
    WHERE t.id = pick.id AND (room.room IS NULL OR pick.nth <= room.room)
    RETURNING t.*),
  runs AS (
    INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, lease_expires_at)
    SELECT id, series, attempt, 'running', $1, started_at, lease_expires_at FROM claimed),
  ${taskEventCtes("SELECT value AS e FROM jsonb_array_elements($8::jsonb) WHERE value->>'task_id' IN (SELECT id FROM claimed)", "$10", "$11")}
  SELECT id, lease_expires_at, (SELECT count(*) FROM events_woken) AS woken FROM claimed`;

function pausedTypeKeys(paused: Array<[string, string]>): string[] {
  return paused.map(([namespace, name]) => typeKey(namespace, name));
}

/** Takes the advisory locks of these limited types, in one order for every claimer (no deadlock). */
async function lockTypes(tx: Queryable, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const sorted = [...new Set(names)].sort();
  await tx.query(`SELECT pg_advisory_xact_lock(${typeLockKey("n")}) FROM unnest($1::text[]) AS n`, [sorted]);
}

/**
 * Claims up to `max` tasks for their next attempt in one transaction of its own: candidates in
 * the fair line's order (with the paused types), the whole transaction planned without sorts (SORT_FREE,
 * sent with the BEGIN), limited types checked under their locks, then one statement writes the
 * claims the core planned, their runs and their task.started events. Four round trips with BEGIN
 * and COMMIT when no limited type is involved; the claim, which starts the tasks' clocks, is the
 * third.
 */
export function claimBatch(
  db: Db,
  workerId: string,
  max: number,
  leaseSeconds: number,
  limits: KnownLimits,
  now: () => Date,
): Promise<ClaimedBatch> {
  return db.transaction(
    async (tx) => {
      const [limitedNames, limitValues] = limits.limited();
      const full =
        limitedNames.length === 0
          ? []
          : (await tx.query<{ name: string }>(FULL_TYPES, [limitedNames, limitValues])).rows.map(
              (r) => r.name,
            );
      const { rows } = await tx.query<Task & { paused: Array<[string, string]>; turn: number }>(CANDIDATES, [
        max,
        full,
      ]);
      const pausedTypes = pausedTypeKeys(rows[0]?.paused ?? []);
      const candidates: Task[] = rows.flatMap(({ paused: _, turn: __, ...task }) =>
        task.id === null ? [] : [task],
      );
      if (candidates.length === 0) return { tasks: [], candidates: 0, pausedTypes };
      const limited = [...new Set(candidates.map((c) => c.name))].filter(
        (name) => limits.of(name) !== undefined,
      );
      await lockTypes(tx, limited);
      // The clock starts after the types' locks were granted (as in claimOne).
      const at = now();
      const planned = candidates.map((candidate) => claimedTask(candidate, workerId, at));
      const { rows: claimed } = await tx.query<{ id: string; lease_expires_at: Date }>(CLAIM, [
        workerId,
        leaseSeconds,
        planned.map((t) => t.id),
        planned.map((t) => t.attempt),
        limited,
        limited.map((name) => limits.of(name)),
        at,
        taskEventsJson(planned.map((task) => ({ event: startedEvent(task, workerId, at), taskId: task.id }))),
        planned.map((t) => t.name),
        OUTBOX_CHANNEL,
        TASK_EVENTS_CHANNEL,
      ]);
      const leases = new Map(claimed.map((c) => [c.id, c.lease_expires_at]));
      return {
        // In the line's order, as planned (the candidates came in it).
        tasks: planned.flatMap((task) =>
          leases.has(task.id) ? [{ ...task, lease_expires_at: leases.get(task.id)! }] : [],
        ),
        candidates: candidates.length,
        pausedTypes: candidates.length < max ? pausedTypes : undefined,
      };
    },
    { settings: SORT_FREE },
  );
}

/**
 * Claims one task for one attempt (an SQS message): a duplicate, a stale message or a task that is
 * not claimable now is skipped with the reason. A due retry is promoted and claimed in one step:
 * in the cloud the retry's queue message may arrive before the reaper's promoter has run.
 */
export async function claimOne(
  tx: Queryable,
  taskId: string,
  attempt: number,
  workerId: string,
  leaseSeconds: number,
  limits: KnownLimits,
  now: () => Date,
): Promise<ClaimResult> {
  const { rows } = await tx.query<{
    name: string;
    status: string;
    attempt: number;
    spent: boolean;
    due: boolean;
    paused: boolean;
  }>(
    `SELECT t.name, t.status, t.attempt, NOT (${ATTEMPT_LEFT}) AS spent, t.run_at <= now() AS due,
       EXISTS (SELECT 1 FROM task_type_pauses p WHERE p.namespace = t.namespace AND p.name = t.name) AS paused
     FROM tasks t WHERE t.id = $1 FOR UPDATE`,
    [taskId],
  );
  const row = rows[0];
  const skip = (reason: SkipReason): ClaimResult => ({ skipped: reason });
  if (!row || row.attempt !== attempt - 1 || row.spent) return skip("not_claimable");
  if (row.status !== "queued" && row.status !== "retrying") return skip("not_claimable");
  if (!row.due) return skip("not_due");
  if (row.paused) return skip("type_paused");
  const limit = limits.of(row.name);
  if (limit !== undefined) {
    await lockTypes(tx, [row.name]);
    const { rows: open } = await tx.query<{ open: number }>(openRunsByName("ARRAY[$1::text]"), [row.name]);
    if ((open[0]?.open ?? 0) >= limit) return skip("type_at_limit");
  }
  // Its clock starts after the type's lock was granted: a claim that waited for it must not
  // appear to start before the run whose end freed its slot.
  const at = now();
  const { rows: started } = await tx.query<Task>(
    `WITH claimed AS (
       UPDATE tasks t SET ${START}, attempt = $4, started_at = $5, updated_at = $5
       WHERE t.id = $3 AND t.status IN ('queued', 'retrying') RETURNING t.*),
     runs AS (
       INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, lease_expires_at)
       SELECT id, series, attempt, 'running', $1, started_at, lease_expires_at FROM claimed)
     SELECT ${TASK_COLUMNS} FROM claimed`,
    [workerId, leaseSeconds, taskId, attempt, at],
  );
  const task = started[0]!;
  await writeTaskEvents(tx, [{ event: startedEvent(task, workerId, at), taskId: task.id }]);
  return { claimed: task };
}
