import { startedEvent } from "../../../core/tasks/attempt-plan.js";
import type { Task } from "../../../core/tasks/task.js";
import {
  type ClaimedBatch,
  type ClaimResult,
  type SkipReason,
  typeKey,
} from "../../../core/tasks/task-queue.js";
import type { Db, Queryable } from "../database.js";
import { writeTaskEvents } from "../event-writer.js";
import { TASK_COLUMNS } from "../task-repository.js";
import { ATTEMPT_LEFT, CLAIM_ORDER, CLAIMABLE, openRunsByName, SORT_FREE, typeLockKey } from "./queue-sql.js";

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

// Run intervals start at clock_timestamp(), not now() (the transaction's start): a claim that
// waited for a type's advisory lock must not appear to start before the run whose end freed its slot.
const START = `status = 'running', attempt = t.attempt + 1, lease_owner = $1,
  lease_expires_at = now() + make_interval(secs => $2), started_at = clock_timestamp(), updated_at = now()`;

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
 * The candidates of one claim: the best claimable rows no other claimer holds, locked for this
 * transaction (SKIP LOCKED: claimers never wait for each other's rows), passing over the full
 * types ($2).
 *
 * The full types come as a parameter, from FULL_TYPES run just before, not as a subquery here:
 * the planner cannot see into a subquery's result and guesses it filters out nearly every row, so
 * it sorted the whole queue instead of walking tasks_queue_idx in claim order and stopping at the
 * limit (21 ms against 0.3 ms per claim with 20,000 queued). With the names as a value it uses
 * the column's statistics (and SORT_FREE covers statistics that are stale).
 */
const CANDIDATES = `
  SELECT t.id, t.name FROM tasks t
  WHERE ${CLAIMABLE} AND t.name <> ALL ($2::text[])
  ORDER BY ${CLAIM_ORDER}
  LIMIT $1 FOR UPDATE SKIP LOCKED`;

/**
 * Claims the candidates (in claim order) that their type's limit leaves room for: each attempt
 * becomes running with its lease, its run row and, written after, its task.started event. The
 * open runs are counted by this statement, after the types' locks were taken by the one before
 * it, so it sees every claim that committed before this one could lock.
 */
const CLAIM = `
  WITH pick AS (
    SELECT p.id, p.name, row_number() OVER (PARTITION BY p.name ORDER BY p.pos) AS nth
    FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS p(id, name, pos)),
  room AS (
    SELECT l.name, l.lim - COALESCE(o.open, 0) AS room FROM unnest($5::text[], $6::int[]) AS l(name, lim)
    LEFT JOIN (${openRunsByName("$5::text[]")}) o
      ON o.name = l.name),
  claimed AS (
    UPDATE tasks t SET ${START}
    FROM pick LEFT JOIN room ON room.name = pick.name
    WHERE t.id = pick.id AND (room.room IS NULL OR pick.nth <= room.room)
    RETURNING t.*),
  runs AS (
    INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, lease_expires_at)
    SELECT id, series, attempt, 'running', $1, started_at, lease_expires_at FROM claimed)
  SELECT ${TASK_COLUMNS} FROM claimed t ORDER BY ${CLAIM_ORDER}`;

/** The paused types: a pool passes over wake-ups about only them (worker-pool.ts). */
async function readPausedTypes(tx: Queryable): Promise<string[]> {
  const { rows } = await tx.query<{ namespace: string; name: string }>(
    "SELECT namespace, name FROM task_type_pauses",
  );
  return rows.map((r) => typeKey(r.namespace, r.name));
}

/** Takes the advisory locks of these limited types, in one order for every claimer (no deadlock). */
async function lockTypes(tx: Queryable, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const sorted = [...new Set(names)].sort();
  await tx.query(`SELECT pg_advisory_xact_lock(${typeLockKey("n")}) FROM unnest($1::text[]) AS n`, [sorted]);
}

/**
 * Claims up to `max` tasks for their next attempt in one transaction of its own: candidates in
 * claim order, the whole transaction planned without sorts (SORT_FREE, sent with the BEGIN),
 * limited types checked under their locks, then the runs and task.started events; the paused
 * types only when the claim came up short. Five round trips with BEGIN and COMMIT when no limited
 * type is involved (six when short); the claim's UPDATE, which starts the tasks' clocks, is the
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
      const { rows: candidates } = await tx.query<{ id: string; name: string }>(CANDIDATES, [max, full]);
      if (candidates.length === 0)
        return { tasks: [], candidates: 0, pausedTypes: await readPausedTypes(tx) };
      const limited = [...new Set(candidates.map((c) => c.name))].filter(
        (name) => limits.of(name) !== undefined,
      );
      await lockTypes(tx, limited);
      const { rows: tasks } = await tx.query<Task>(CLAIM, [
        workerId,
        leaseSeconds,
        candidates.map((c) => c.id),
        candidates.map((c) => c.name),
        limited,
        limited.map((name) => limits.of(name)),
      ]);
      const at = now();
      await writeTaskEvents(
        tx,
        tasks.map((task) => ({ event: startedEvent(task, workerId, at), taskId: task.id })),
      );
      const pausedTypes = candidates.length < max ? await readPausedTypes(tx) : undefined;
      return { tasks, candidates: candidates.length, pausedTypes };
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
  const { rows: started } = await tx.query<Task>(
    `WITH claimed AS (
       UPDATE tasks t SET ${START} WHERE t.id = $3 AND t.status IN ('queued', 'retrying') RETURNING t.*),
     runs AS (
       INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, lease_expires_at)
       SELECT id, series, attempt, 'running', $1, started_at, lease_expires_at FROM claimed)
     SELECT ${TASK_COLUMNS} FROM claimed`,
    [workerId, leaseSeconds, taskId],
  );
  const task = started[0]!;
  await writeTaskEvents(tx, [{ event: startedEvent(task, workerId, now()), taskId: task.id }]);
  return { claimed: task };
}
