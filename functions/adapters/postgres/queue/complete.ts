import type { QueueDispatch, TmeEvent } from "../../../core/events/event.js";
import { storableText } from "../../../core/plugins/output-tail.js";
import type { TaskOutcome } from "../../../core/plugins/plugin.js";
import { attemptEnded, planAttemptEnd, RUN_STATUS_OF_END } from "../../../core/tasks/attempt-plan.js";
import { dispatchFor } from "../../../core/tasks/control-plan.js";
import type { Task, TaskProgress } from "../../../core/tasks/task.js";
import type { AttemptEnd, Lease, WorkInterval } from "../../../core/tasks/task-queue.js";
import type { Queryable } from "../database.js";
import { type QueueSignalRoute, wakeWorkers, writeQueueSignals, writeTaskEvents } from "../event-writer.js";
import { TASK_COLUMNS, TASK_COLUMNS_T } from "../task-repository.js";
import type { KnownLimits } from "./claim.js";
import { CLAIMABLE, FAIR_LINE_CTES, fairLine, MAX_ERROR_BYTES, sanitizeReplacer } from "./queue-sql.js";

/** One attempt's end, as its worker reports it. */
export interface Completion {
  lease: Lease;
  end: Exclude<AttemptEnd, { status: "released" }>;
  run: TaskOutcome;
  progress?: TaskProgress;
  /** When the work ran, on the worker's clock; default: claimed until written. */
  worked?: WorkInterval;
}

export interface CompleteOptions {
  outputTailBytes: number;
  limits: KnownLimits;
  now: () => Date;
  queueSignals: QueueSignalRoute;
}

/**
 * Every completion of the batch in one statement. An attempt's task is written only if the lease
 * still fences it (FENCE, per row); its run row is closed with it. An attempt whose task the API
 * cancelled meanwhile (same series) gets its run closed as cancelled, which frees the type's slot
 * now that its work is over; the task itself is the API's (it already wrote task.cancelled).
 * The run's interval is when the work ran as its worker saw it (worked), so a slot handed to the
 * next task while this end waited for its batch never shows two runs overlapping in it.
 * Rows come back tagged: `ended` (this completion changed the task) or `cancelled`.
 *
 * Only the completions that did not end their task can be of a cancelled one, and each is looked
 * up by its id (the LATERAL ... LIMIT 1): with the statistics saying no task is cancelled, a join
 * had the planner scan every task for the status on every batch (4.7 ms with 20,000 tasks, and
 * growing with the history kept).
 */
const COMPLETE = `
  WITH c AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS c(
      id text, worker_id text, series int, attempt int, cancel boolean, status task_status, result jsonb,
      error text, finished boolean, retry_in_ms double precision, progress jsonb, run_status text,
      exit_code int, output_tail text, output_truncated boolean, pid int,
      started_at timestamptz, ended_at timestamptz)),
  ended AS (
    UPDATE tasks t SET status = c.status, result = c.result -> 'value', error = c.error, updated_at = now(),
      started_at = COALESCE(c.started_at, t.started_at),
      finished_at = CASE WHEN c.finished THEN COALESCE(c.ended_at, now()) END,
      run_at = CASE WHEN c.status = 'retrying' THEN now() + make_interval(secs => c.retry_in_ms / 1000) ELSE t.run_at END,
      progress = COALESCE(c.progress, t.progress), lease_owner = NULL, lease_expires_at = NULL
    FROM c
    WHERE NOT c.cancel AND t.id = c.id AND t.status = 'running' AND t.lease_owner = c.worker_id
      AND t.series = c.series AND t.attempt = c.attempt
    RETURNING t.*),
  cancelled AS (
    SELECT c.id FROM c
    CROSS JOIN LATERAL (
      SELECT 1 FROM tasks t WHERE t.id = c.id AND t.status = 'cancelled' AND t.series = c.series LIMIT 1) found
    WHERE c.cancel OR c.id NOT IN (SELECT id FROM ended)),
  closed AS (
    UPDATE task_runs r SET
      status = CASE WHEN c.id IN (SELECT id FROM cancelled) THEN 'cancelled' ELSE c.run_status END,
      error = CASE WHEN c.id IN (SELECT id FROM cancelled) AND NOT c.cancel THEN 'cancelled while running' ELSE c.error END,
      exit_code = c.exit_code, output_tail = c.output_tail, output_truncated = c.output_truncated,
      pid = COALESCE(c.pid, r.pid), started_at = COALESCE(c.started_at, r.started_at),
      finished_at = COALESCE(c.ended_at, clock_timestamp())
    FROM c
    WHERE r.task_id = c.id AND r.series = c.series AND r.attempt = c.attempt AND r.worker_id = c.worker_id
      AND r.finished_at IS NULL
      AND (c.id IN (SELECT id FROM ended) OR c.id IN (SELECT id FROM cancelled)))
  SELECT ${TASK_COLUMNS}, 'ended' AS outcome FROM ended
  UNION ALL
  SELECT ${TASK_COLUMNS_T}, 'cancelled' AS outcome FROM tasks t WHERE t.id IN (SELECT id FROM cancelled)`;

/**
 * Records the ends of many attempts in the caller's transaction: the fenced writes, the run rows,
 * the events of the tasks really changed and the queue signals (a retry's next attempt; the next
 * task of a limited type whose slot freed). Answers, per completion, whether it was written: false
 * when its lease was lost first (the late result changes nothing).
 */
export async function completeAttempts(
  tx: Queryable,
  completions: readonly Completion[],
  options: CompleteOptions,
): Promise<boolean[]> {
  if (completions.length === 0) return [];
  const plans = completions.map(({ end }) => {
    const error = "error" in end ? storableText(end.error, MAX_ERROR_BYTES) : null;
    return { error, change: end.status === "cancelled" ? undefined : planAttemptEnd(end, error) };
  });
  const rows = completions.map(({ lease, end, run, progress, worked }, i) => {
    const { error, change } = plans[i]!;
    return {
      id: lease.taskId,
      worker_id: lease.workerId,
      series: lease.series,
      attempt: lease.attempt,
      cancel: change === undefined,
      status: change?.status ?? null,
      // Boxed, so a succeeded task's null result is stored as JSON null (SQL NULL otherwise).
      result: change?.status === "succeeded" ? { value: change.result ?? null } : null,
      error,
      finished: change?.finished ?? false,
      retry_in_ms: change?.retryInMs ?? 0,
      progress: progress ?? null,
      run_status: RUN_STATUS_OF_END[end.status],
      exit_code: run.exitCode ?? null,
      output_tail:
        run.outputTail === undefined ? null : storableText(run.outputTail, options.outputTailBytes),
      output_truncated: run.outputTruncated ?? false,
      pid: run.pid ?? null,
      started_at: worked?.startedAt ?? null,
      ended_at: worked?.endedAt ?? null,
    };
  });
  const { rows: changed } = await tx.query<Task & { outcome: "ended" | "cancelled" }>(COMPLETE, [
    JSON.stringify(rows, sanitizeReplacer),
  ]);
  const ended = new Map<string, Task>();
  for (const row of changed) if (row.outcome === "ended") ended.set(row.id, row);

  const at = options.now();
  const events: Array<{ event: TmeEvent; taskId: string }> = [];
  const retries = new Map<string, QueueDispatch[]>();
  const written = completions.map(({ lease }, i) => {
    const { error, change } = plans[i]!;
    if (!change) return true;
    const task = ended.get(lease.taskId);
    if (!task) return false;
    const { event, dispatch } = attemptEnded(task, change.status, error, at);
    events.push({ event, taskId: task.id });
    if (dispatch) {
      const list = retries.get(task.namespace) ?? [];
      list.push(dispatch);
      retries.set(task.namespace, list);
    }
    return true;
  });
  await writeTaskEvents(tx, events);
  for (const [namespace, dispatches] of retries)
    await writeQueueSignals(tx, namespace, dispatches, options.queueSignals);
  const freed = new Set(changed.map((row) => row.name));
  await signalNextOfLimitedTypes(tx, [...freed], options);
  return written;
}

/**
 * Slots of limited types just freed: signal the next waiting task of each (the first of its line,
 * fair between namespaces). In the cloud its earlier message was dropped while the type was full;
 * this brings it on now instead of at the next sweep. Locally a signal is only a NOTIFY, which
 * wakes the pools whatever task it names, so one is sent without looking for the task: finding
 * it read and sorted the type's whole backlog in the completion's transaction (92 ms with 40,000
 * queued of the type), and a pool that wakes to no claimable task finds that in one claim.
 */
export async function signalNextOfLimitedTypes(
  tx: Queryable,
  names: readonly string[],
  options: Pick<CompleteOptions, "limits" | "queueSignals" | "now">,
): Promise<void> {
  const limited = names.filter((name) => options.limits.of(name) !== undefined);
  if (limited.length === 0) return;
  if (options.queueSignals === "notify") {
    await wakeWorkers(tx);
    return;
  }
  const { rows } = await tx.query<{ id: string; namespace: string; attempt: number; priority: number }>(
    `WITH RECURSIVE ${FAIR_LINE_CTES}
     SELECT n.id, n.namespace, n.attempt, n.priority FROM unnest($1::text[]) AS freed(name)
     CROSS JOIN LATERAL (${fairLine({
       columns: "t.id, t.namespace, t.attempt, t.priority, t.run_at",
       where: `t.name = freed.name AND ${CLAIMABLE}`,
       limit: "1",
     })}) n`,
    [limited],
  );
  const now = options.now();
  const byNamespace = new Map<string, QueueDispatch[]>();
  for (const next of rows) {
    const list = byNamespace.get(next.namespace) ?? [];
    list.push(dispatchFor({ ...next, run_at: now }));
    byNamespace.set(next.namespace, list);
  }
  for (const [namespace, dispatches] of byNamespace)
    await writeQueueSignals(tx, namespace, dispatches, options.queueSignals);
}

/** Stamps when a run whose lease was lost really stopped its work (the row may be closed already). */
export async function recordWorkEnded(db: Queryable, lease: Lease, endedAt: Date): Promise<void> {
  await db.query(
    `UPDATE task_runs SET work_ended_at = $5
     WHERE task_id = $1 AND series = $2 AND attempt = $3 AND worker_id = $4`,
    [lease.taskId, lease.series, lease.attempt, lease.workerId, endedAt],
  );
}
