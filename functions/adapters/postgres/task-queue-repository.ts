import { type EventType, newEvent, type QueueDispatch } from "../../core/events/event.js";
import { storableText } from "../../core/plugins/output-tail.js";
import type { TaskOutcome } from "../../core/plugins/plugin.js";
import { type Task, type TaskProgress, toTaskView } from "../../core/tasks/task.js";
import type {
  AttemptEnd,
  ClaimResult,
  HeartbeatResult,
  Lease,
  SkipReason,
  TaskQueue,
} from "../../core/tasks/task-queue.js";
import type { Db, Queryable } from "./database.js";
import { writeEvent, writeQueueSignal, writeQueueSignals } from "./event-writer.js";
import { TASK_COLUMNS } from "./task-repository.js";

export interface PostgresTaskQueueOptions {
  /** Per-type concurrency limit of a task name (task_plugins.yaml `concurrency`). */
  limitOf: (name: string) => number | undefined;
  leaseSeconds: number;
  /** Cap on a run's stored output tail (shell.output_tail_bytes). */
  outputTailBytes: number;
  /** Runs of one task lost to infrastructure before it fails anyway (worker.max_infra_retries). */
  maxInfraRetries: number;
}

/** Errors and messages stored on tasks and runs are cut to this. */
const MAX_ERROR_BYTES = 16_384;

// Run intervals use clock_timestamp(), not now() (the transaction's start): a claim that waited
// for a type's advisory lock must not appear to start before the run whose end freed its slot.

/** The only ways a claim picks a task: due, not paused as a type. */
const CLAIMABLE = `t.run_at <= now() AND t.attempt - t.infra_retries < t.max_attempts
  AND NOT EXISTS (SELECT 1 FROM task_type_pauses p WHERE p.namespace = t.namespace AND p.name = t.name)`;

// Which attempt a write belongs to: a worker whose lease was taken over (the reaper presumed it
// dead) or whose task was cancelled or restarted matches nothing, so a late write changes nothing.
const FENCE = `id = $1 AND status = 'running' AND lease_owner = $2 AND series = $3 AND attempt = $4`;

const RUN_STATUS: Record<Exclude<AttemptEnd["status"], "released">, string> = {
  succeeded: "succeeded",
  failed: "failed",
  retrying: "failed",
  timed_out: "timed_out",
  cancelled: "cancelled",
};

/**
 * The task queue on Postgres (both runtimes: in the cloud SQS only carries the signal, the
 * claim happens here). Every state change writes its event in the same transaction.
 */
export class PostgresTaskQueue implements TaskQueue {
  constructor(
    private readonly db: Db,
    private readonly options: PostgresTaskQueueOptions,
  ) {}

  /** Names whose running count has reached their limit: the claim skips them at once. */
  private async namesAtLimit(tx: Queryable): Promise<string[]> {
    const { rows } = await tx.query<{ name: string; running: number }>(
      `SELECT t.name, count(*) AS running FROM task_runs r JOIN tasks t ON t.id = r.task_id
       WHERE r.finished_at IS NULL GROUP BY t.name`,
    );
    return rows
      .filter((r) => {
        const limit = this.options.limitOf(r.name);
        return limit !== undefined && r.running >= limit;
      })
      .map((r) => r.name);
  }

  /**
   * Holds the type's slot count still while this transaction claims: claims of one limited name
   * take turns on an advisory lock and count after the previous claim committed, so two workers
   * never both take the last slot. A slot is an open run, not a task in status running: a
   * cancelled task's command may take a kill grace to die, and holds its slot until it has.
   */
  private async typeHasRoom(tx: Queryable, name: string): Promise<boolean> {
    const limit = this.options.limitOf(name);
    if (limit === undefined) return true;
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('tme.task_type:' || $1))", [name]);
    const { rows } = await tx.query<{ running: number }>(
      `SELECT count(*) AS running FROM task_runs r JOIN tasks t ON t.id = r.task_id
       WHERE r.finished_at IS NULL AND t.name = $1`,
      [name],
    );
    return (rows[0]?.running ?? 0) < limit;
  }

  claimNext(workerId: string): Promise<Task | undefined> {
    return this.db.transaction(async (tx) => {
      const excluded = await this.namesAtLimit(tx);
      // Each pass takes the best row no other worker holds; a row of a type that filled up
      // since namesAtLimit is passed over (and its name excluded) rather than waited for.
      for (let pass = 0; pass < 20; pass++) {
        const { rows } = await tx.query<{ id: string; name: string }>(
          `SELECT t.id, t.name FROM tasks t
           WHERE t.status = 'queued' AND ${CLAIMABLE} AND NOT (t.name = ANY($1::text[]))
           ORDER BY t.priority DESC, t.run_at, t.id
           LIMIT 1 FOR UPDATE SKIP LOCKED`,
          [excluded],
        );
        const candidate = rows[0];
        if (!candidate) return undefined;
        if (!(await this.typeHasRoom(tx, candidate.name))) {
          excluded.push(candidate.name);
          continue;
        }
        return this.start(tx, candidate.id, workerId);
      }
      return undefined;
    });
  }

  claim(taskId: string, attempt: number, workerId: string): Promise<ClaimResult> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{
        name: string;
        status: string;
        attempt: number;
        spent: boolean;
        due: boolean;
        paused: boolean;
      }>(
        `SELECT t.name, t.status, t.attempt, t.attempt - t.infra_retries >= t.max_attempts AS spent, t.run_at <= now() AS due,
           EXISTS (SELECT 1 FROM task_type_pauses p WHERE p.namespace = t.namespace AND p.name = t.name) AS paused
         FROM tasks t WHERE t.id = $1 FOR UPDATE`,
        [taskId],
      );
      const row = rows[0];
      const skip = (reason: SkipReason): ClaimResult => ({ skipped: reason });
      // A duplicate (already claimed), a stale message (the task moved on) or an unknown id.
      if (!row || row.attempt !== attempt - 1 || row.spent) return skip("not_claimable");
      if (row.status !== "queued" && row.status !== "retrying") return skip("not_claimable");
      if (!row.due) return skip("not_due");
      if (row.paused) return skip("type_paused");
      if (!(await this.typeHasRoom(tx, row.name))) return skip("type_at_limit");
      // A due retry is promoted and claimed in one step: in the cloud the retry's queue message
      // may arrive before the reaper's promoter has run.
      return { claimed: await this.start(tx, taskId, workerId) };
    });
  }

  /** queued -> running for the next attempt, its run row and its task.started event. */
  private async start(tx: Queryable, taskId: string, workerId: string): Promise<Task> {
    const { rows } = await tx.query<Task>(
      `UPDATE tasks SET status = 'running', attempt = attempt + 1, lease_owner = $2,
         lease_expires_at = now() + make_interval(secs => $3), started_at = clock_timestamp(), updated_at = now()
       WHERE id = $1 AND status IN ('queued', 'retrying')
       RETURNING ${TASK_COLUMNS}`,
      [taskId, workerId, this.options.leaseSeconds],
    );
    const task = rows[0]!;
    await tx.query(
      `INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, lease_expires_at)
       VALUES ($1, $2, $3, 'running', $4, clock_timestamp(), $5)`,
      [task.id, task.series, task.attempt, workerId, task.lease_expires_at],
    );
    await this.event(tx, "task.started", task, { worker_id: workerId });
    return task;
  }

  private async event(
    tx: Queryable,
    type: EventType,
    task: Task,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    await writeEvent(
      tx,
      newEvent(type, task.namespace, { task: toTaskView(task), ...extra }, new Date()),
      task.id,
    );
  }

  async heartbeat(lease: Lease): Promise<HeartbeatResult> {
    return this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $5) WHERE ${FENCE}`,
        [lease.taskId, lease.workerId, lease.series, lease.attempt, this.options.leaseSeconds],
      );
      if (rowCount === 1) {
        await tx.query(
          `UPDATE task_runs SET lease_expires_at = now() + make_interval(secs => $4)
           WHERE task_id = $1 AND series = $2 AND attempt = $3 AND finished_at IS NULL`,
          [lease.taskId, lease.series, lease.attempt, this.options.leaseSeconds],
        );
        return "ok";
      }
      return (await this.cancelledUnderUs(tx, lease)) ? "cancelled" : "lost";
    });
  }

  /** True when the API cancelled this very attempt (same series) while it ran. */
  private async cancelledUnderUs(tx: Queryable, lease: Lease): Promise<boolean> {
    const { rows } = await tx.query<{ status: string; series: number }>(
      `SELECT status, series FROM tasks WHERE id = $1`,
      [lease.taskId],
    );
    return rows[0]?.status === "cancelled" && rows[0].series === lease.series;
  }

  progress(lease: Lease, progress: TaskProgress, emitEvent: boolean): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<Task>(
        `UPDATE tasks SET progress = $5, updated_at = now() WHERE ${FENCE} RETURNING ${TASK_COLUMNS}`,
        [lease.taskId, lease.workerId, lease.series, lease.attempt, sanitizeJson(progress)],
      );
      const task = rows[0];
      if (!task) return false;
      if (emitEvent) await this.event(tx, "task.progress", task, { progress });
      return true;
    });
  }

  finish(lease: Lease, end: AttemptEnd, run: TaskOutcome, progress?: TaskProgress): Promise<boolean> {
    if (end.status === "released") return this.release(lease, end.error, run);
    return this.db.transaction(async (tx) => {
      const runFields = [
        run.exitCode ?? null,
        run.outputTail === undefined ? null : storableText(run.outputTail, this.options.outputTailBytes),
        run.outputTruncated ?? false,
        run.pid ?? null,
      ];
      const error = "error" in end ? storableText(end.error, MAX_ERROR_BYTES) : null;
      if (end.status === "cancelled") {
        // The API already moved the task to cancelled (with its event); the worker's part is
        // to close its run row once the process is dead, which frees the type's slot.
        await this.closeRun(tx, lease, "cancelled", error, runFields, true);
        await this.signalNextOfLimitedTypeOf(tx, lease.taskId);
        return true;
      }
      const finished = end.status !== "retrying";
      const { rows } = await tx.query<Task>(
        `UPDATE tasks SET status = $5::task_status, result = $6, error = $7, updated_at = now(),
           finished_at = CASE WHEN $8::boolean THEN now() END,
           run_at = CASE WHEN $5::task_status = 'retrying' THEN now() + make_interval(secs => $9::double precision / 1000) ELSE run_at END,
           progress = COALESCE($10, progress), lease_owner = NULL, lease_expires_at = NULL
         WHERE ${FENCE} RETURNING ${TASK_COLUMNS}`,
        [
          lease.taskId,
          lease.workerId,
          lease.series,
          lease.attempt,
          end.status,
          end.status === "succeeded" ? sanitizeJson(end.result ?? null) : null,
          error,
          finished,
          end.status === "retrying" ? end.retryInMs : 0,
          progress === undefined ? null : sanitizeJson(progress),
        ],
      );
      const task = rows[0];
      if (!task) {
        // Lease lost. If the API cancelled the task meanwhile, the run still ends as cancelled.
        if (await this.cancelledUnderUs(tx, lease)) {
          await this.closeRun(tx, lease, "cancelled", "cancelled while running", runFields, true);
          await this.signalNextOfLimitedTypeOf(tx, lease.taskId);
        }
        return false;
      }
      await this.closeRun(tx, lease, RUN_STATUS[end.status], error, runFields, false);
      await this.signalNextOfLimitedType(tx, task.name);
      switch (end.status) {
        case "succeeded":
          await this.event(tx, "task.succeeded", task);
          break;
        case "failed":
          await this.event(tx, "task.failed", task, { error });
          break;
        case "timed_out":
          await this.event(tx, "task.timed_out", task, { error });
          break;
        case "retrying":
          await this.event(tx, "task.retrying", task, { error, retry_at: task.run_at.toISOString() });
          // Sent now, due at the retry time: the cloud queue delivers it then and the claim
          // promotes the task; locally the promoter does.
          await writeQueueSignal(tx, task.namespace, {
            task_id: task.id,
            attempt: task.attempt + 1,
            priority: task.priority,
            run_at: task.run_at.toISOString(),
          });
          break;
      }
      return true;
    });
  }

  async recordWorkEnded(lease: Lease, endedAt: Date): Promise<void> {
    await this.db.query(
      `UPDATE task_runs SET work_ended_at = $5
       WHERE task_id = $1 AND series = $2 AND attempt = $3 AND worker_id = $4`,
      [lease.taskId, lease.series, lease.attempt, lease.workerId, endedAt],
    );
  }

  /**
   * A slot of a limited type just freed: signal the next waiting task of that name. In the cloud
   * its earlier message was dropped while the type was full; this brings it on now instead of
   * at the next sweep. Locally the NOTIFY only wakes the pool a little earlier.
   */
  private async signalNextOfLimitedType(tx: Queryable, name: string): Promise<void> {
    if (this.options.limitOf(name) === undefined) return;
    const { rows } = await tx.query<{ id: string; namespace: string; attempt: number; priority: number }>(
      `SELECT t.id, t.namespace, t.attempt, t.priority FROM tasks t
       WHERE t.name = $1 AND t.status = 'queued' AND ${CLAIMABLE}
       ORDER BY t.priority DESC, t.run_at, t.id LIMIT 1`,
      [name],
    );
    const next = rows[0];
    if (!next) return;
    await writeQueueSignal(tx, next.namespace, {
      task_id: next.id,
      attempt: next.attempt + 1,
      priority: next.priority,
      run_at: new Date().toISOString(),
    });
  }

  private async signalNextOfLimitedTypeOf(tx: Queryable, taskId: string): Promise<void> {
    const { rows } = await tx.query<{ name: string }>("SELECT name FROM tasks WHERE id = $1", [taskId]);
    if (rows[0]) await this.signalNextOfLimitedType(tx, rows[0].name);
  }

  private async closeRun(
    tx: Queryable,
    lease: Lease,
    status: string,
    error: string | null,
    runFields: unknown[],
    onlyIfCancelled: boolean,
  ): Promise<void> {
    await tx.query(
      `UPDATE task_runs SET status = $5, error = $6, exit_code = $7, output_tail = $8, output_truncated = $9,
         pid = COALESCE($10, pid), finished_at = clock_timestamp()
       WHERE task_id = $1 AND series = $2 AND attempt = $3 AND worker_id = $4 AND finished_at IS NULL
         ${onlyIfCancelled ? "AND EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND status = 'cancelled' AND series = $2)" : ""}`,
      [lease.taskId, lease.series, lease.attempt, lease.workerId, status, error, ...runFields],
    );
  }

  /** Gives an attempt back at once (shutdown): the reaper's path without waiting for the lease. */
  private release(lease: Lease, reason: string, run: TaskOutcome): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string }>(`SELECT id FROM tasks WHERE ${FENCE} FOR UPDATE`, [
        lease.taskId,
        lease.workerId,
        lease.series,
        lease.attempt,
      ]);
      if (!rows[0]) return false;
      await this.takeBack(tx, lease.taskId, reason, run);
      return true;
    });
  }

  /**
   * running -> queued, the run row ends 'lost'. The run was lost to infrastructure (its worker
   * shut down, crashed, or lost the database), not to the task: it does not count against
   * max_attempts but against worker.max_infra_retries, and a task past that cap fails (one
   * that kills its worker every time must not loop forever). The event is task.retrying (it
   * will run again, now) or task.failed, with `infra_retries` saying which budget it spent.
   */
  private async takeBack(
    tx: Queryable,
    taskId: string,
    reason: string,
    run: TaskOutcome = {},
    rerunAfterSeconds = 0,
  ): Promise<"queued" | "failed"> {
    const { rows } = await tx.query<Task>(
      `UPDATE tasks SET infra_retries = infra_retries + 1,
         status = CASE WHEN infra_retries + 1 > $3 THEN 'failed' ELSE 'queued' END::task_status,
         error = CASE WHEN infra_retries + 1 > $3
           THEN $2 || ' (lost ' || (infra_retries + 1) || ' runs to infrastructure; worker.max_infra_retries is ' || $3 || ')'
           ELSE $2 END,
         updated_at = now(), run_at = now() + make_interval(secs => $4),
         finished_at = CASE WHEN infra_retries + 1 > $3 THEN now() END,
         lease_owner = NULL, lease_expires_at = NULL
       WHERE id = $1 AND status = 'running' RETURNING ${TASK_COLUMNS}`,
      [taskId, reason, this.options.maxInfraRetries, rerunAfterSeconds],
    );
    const task = rows[0]!;
    await tx.query(
      `UPDATE task_runs SET status = 'lost', error = $4, finished_at = clock_timestamp(), exit_code = $5, output_tail = $6,
         output_truncated = $7, pid = COALESCE($8, pid)
       WHERE task_id = $1 AND series = $2 AND attempt = $3 AND finished_at IS NULL`,
      [
        task.id,
        task.series,
        task.attempt,
        reason,
        run.exitCode ?? null,
        run.outputTail === undefined ? null : storableText(run.outputTail, this.options.outputTailBytes),
        run.outputTruncated ?? false,
        run.pid ?? null,
      ],
    );
    await this.signalNextOfLimitedType(tx, task.name);
    const infra = { infra_retries: task.infra_retries, max_infra_retries: this.options.maxInfraRetries };
    if (task.status === "queued") {
      await this.event(tx, "task.retrying", task, {
        error: reason,
        retry_at: task.run_at.toISOString(),
        lost_to_infrastructure: true,
        ...infra,
      });
      await writeQueueSignal(tx, task.namespace, {
        task_id: task.id,
        attempt: task.attempt + 1,
        priority: task.priority,
        run_at: task.run_at.toISOString(),
      });
      return "queued";
    }
    await this.event(tx, "task.failed", task, { error: task.error, lost_to_infrastructure: true, ...infra });
    return "failed";
  }

  async reapExpired(limit = 100): Promise<{ requeued: number; failed: number; orphanRuns: number }> {
    const counts = { requeued: 0, failed: 0, orphanRuns: 0 };
    await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string }>(
        `SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < now()
         ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      );
      for (const { id } of rows) {
        const outcome = await this.takeBack(tx, id, "worker lost: its lease expired without a heartbeat");
        if (outcome === "queued") counts.requeued++;
        else counts.failed++;
      }
      // Run rows whose worker died after its task moved on (cancelled, restarted): nobody
      // else would close them.
      const orphans = await tx.query(
        `UPDATE task_runs r SET finished_at = clock_timestamp(),
           status = CASE WHEN t.status = 'cancelled' AND t.series = r.series THEN 'cancelled' ELSE 'lost' END,
           error = COALESCE(r.error, 'worker lost: its lease expired without a heartbeat')
         FROM tasks t
         WHERE r.task_id = t.id AND r.finished_at IS NULL AND r.lease_expires_at < now()
           AND NOT (t.status = 'running' AND t.series = r.series AND t.attempt = r.attempt)`,
      );
      counts.orphanRuns = orphans.rowCount ?? 0;
    });
    return counts;
  }

  /**
   * Local workers silent past their own presence timeout (migrations/0021_workers.sql) are dead,
   * or cut off with their commands stopped on their own clocks by now: their rows go, and their
   * running tasks come back at once rather than when each lease runs out. A task row locked by
   * someone else is left to its lease's expiry.
   */
  async reapDeadWorkers(): Promise<{ workers: string[]; requeued: number; failed: number }> {
    return this.db.transaction(async (tx) => {
      const dead = await tx.query<{ id: string; dead_after_seconds: number }>(
        `DELETE FROM workers WHERE id IN (
           SELECT id FROM workers WHERE heartbeat_at < now() - make_interval(secs => dead_after_seconds)
           FOR UPDATE SKIP LOCKED)
         RETURNING id, dead_after_seconds`,
      );
      const counts = { workers: dead.rows.map((w) => w.id), requeued: 0, failed: 0 };
      for (const worker of dead.rows) {
        const { rows } = await tx.query<{ id: string }>(
          `SELECT id FROM tasks WHERE status = 'running' AND lease_owner = $1 ORDER BY id FOR UPDATE SKIP LOCKED`,
          [worker.id],
        );
        const reason = `worker lost: ${worker.id} sent no heartbeat for ${worker.dead_after_seconds} s`;
        for (const { id } of rows) {
          if ((await this.takeBack(tx, id, reason)) === "queued") counts.requeued++;
          else counts.failed++;
        }
      }
      return counts;
    });
  }

  /**
   * Takes back every running task and closes every open run at once, whatever its lease says:
   * for a process that knows it is the only worker (the embedded server's one owner at start),
   * everything still running belonged to an instance that is gone. Its commands may still be
   * ending: each supervisor stops its command when its TME dies, with SIGTERM and up to the kill
   * grace before SIGKILL, so the tasks run again only `rerunAfterSeconds` (that grace) from now.
   */
  async reclaimAll(reason: string, rerunAfterSeconds = 0, batch = 500): Promise<number> {
    let total = 0;
    for (;;) {
      const taken = await this.db.transaction(async (tx) => {
        const { rows } = await tx.query<{ id: string }>(
          `SELECT id FROM tasks WHERE status = 'running' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [batch],
        );
        for (const { id } of rows) await this.takeBack(tx, id, reason, {}, rerunAfterSeconds);
        return rows.length;
      });
      total += taken;
      if (taken < batch) break;
    }
    await this.db.query(
      `UPDATE task_runs r SET finished_at = clock_timestamp(),
         status = CASE WHEN t.status = 'cancelled' AND t.series = r.series THEN 'cancelled' ELSE 'lost' END,
         error = COALESCE(r.error, $1)
       FROM tasks t WHERE r.task_id = t.id AND r.finished_at IS NULL`,
      [reason],
    );
    return total;
  }

  async promoteDueRetries(limit = 500): Promise<number> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{
        id: string;
        namespace: string;
        attempt: number;
        priority: number;
        run_at: Date;
      }>(
        `UPDATE tasks t SET status = 'queued', updated_at = now()
         FROM (SELECT id FROM tasks WHERE status = 'retrying' AND run_at <= now()
               ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
         WHERE t.id = due.id
         RETURNING t.id, t.namespace, t.attempt, t.priority, t.run_at`,
        [limit],
      );
      // No event: the task.retrying event already announced this moment (its retry_at).
      await signalNextAttempts(tx, rows);
      return rows.length;
    });
  }

  /**
   * Cloud safety net: queued tasks that are due, not held by a paused type, and had no queue
   * signal for `olderThanSeconds` get a new one. Covers a message dropped after a skipped claim
   * (its type was paused or full) or lost anywhere between the outbox and the worker.
   */
  async redispatchStranded(olderThanSeconds = 120, limit = 500): Promise<number> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{
        id: string;
        namespace: string;
        attempt: number;
        priority: number;
        run_at: Date;
      }>(
        `SELECT t.id, t.namespace, t.attempt, t.priority, t.run_at FROM tasks t
         WHERE t.status = 'queued' AND ${CLAIMABLE}
           AND t.run_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.type = 'queue.dispatch'
             AND o.payload ->> 'task_id' = t.id AND o.created_at > now() - make_interval(secs => $1))
         ORDER BY t.priority DESC, t.run_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [olderThanSeconds, limit],
      );
      const now = new Date();
      await signalNextAttempts(
        tx,
        rows.map((row) => ({ ...row, run_at: now })),
      );
      return rows.length;
    });
  }
}

/** JSON for a jsonb parameter; NUL characters (which jsonb refuses) become U+FFFD. */
function sanitizeJson(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, v) =>
    typeof v === "string" && v.includes("\u0000") ? v.replaceAll("\u0000", "\uFFFD") : v,
  );
}

/** Queue signals for the next attempt of each task, one batch per namespace. */
async function signalNextAttempts(
  tx: Queryable,
  rows: ReadonlyArray<{ id: string; namespace: string; attempt: number; priority: number; run_at: Date }>,
): Promise<void> {
  const byNamespace = new Map<string, QueueDispatch[]>();
  for (const row of rows) {
    const dispatch = {
      task_id: row.id,
      attempt: row.attempt + 1,
      priority: row.priority,
      run_at: row.run_at.toISOString(),
    };
    byNamespace.set(row.namespace, [...(byNamespace.get(row.namespace) ?? []), dispatch]);
  }
  for (const [namespace, dispatches] of byNamespace) await writeQueueSignals(tx, namespace, dispatches);
}
