import type { Db } from "../../functions/adapters/postgres/database.js";
import { newId } from "../../functions/core/ids.js";
import { FINISHED_STATUSES, type Task, type TaskStatus } from "../../functions/core/tasks/task.js";

const isFinished = (status: TaskStatus) => (FINISHED_STATUSES as readonly TaskStatus[]).includes(status);

export interface TaskRowInput {
  namespace?: string;
  name?: string;
  status?: TaskStatus;
  priority?: number;
  attempt?: number;
  series?: number;
  run_at?: Date;
  created_at?: Date;
  labels?: Record<string, string>;
  error?: string | null;
  result?: unknown;
  schedule_id?: string | null;
}

/**
 * A task row written straight to the table, in any status, without the engine: running rows get
 * a live lease and an open run, finished rows a finished_at, as the schema and the engine demand.
 */
export async function insertTask(db: Db, input: TaskRowInput = {}): Promise<string> {
  const id = newId("tsk");
  const status = input.status ?? "queued";
  const running = status === "running";
  const finished = isFinished(status);
  const started = running || finished;
  await db.query(
    `INSERT INTO tasks (id, namespace, name, handler, status, priority, attempt, series, max_attempts,
       timeout_seconds, run_at, created_at, updated_at, labels, error, result, schedule_id,
       started_at, finished_at, lease_owner, lease_expires_at, progress)
     VALUES ($1, $2, $3, 'noop', $4, $5, $6, $7, 3, 60, $8, $9, $9, $10, $11, $12, $13,
       CASE WHEN $14 THEN now() - interval '1 minute' END, CASE WHEN $15 THEN now() END,
       CASE WHEN $16 THEN 'worker-test' END, CASE WHEN $16 THEN now() + interval '5 minutes' END,
       CASE WHEN $14 THEN '{"percent": 40, "message": "half"}'::jsonb END)`,
    [
      id,
      input.namespace ?? "default",
      input.name ?? "noop",
      status,
      input.priority ?? 5,
      input.attempt ?? (started ? 1 : 0),
      input.series ?? 0,
      input.run_at ?? new Date(Date.now() - 1000),
      input.created_at ?? new Date(),
      JSON.stringify(input.labels ?? {}),
      input.error ?? (status === "failed" ? "exit code 1" : null),
      input.result === undefined ? null : JSON.stringify(input.result),
      input.schedule_id ?? null,
      started,
      finished,
      running,
    ],
  );
  if (running) {
    // A running task always has its attempt's run open: that is what holds a worker slot.
    await db.query(
      `INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, lease_expires_at)
       VALUES ($1, $2, $3, 'running', 'worker-test', now() - interval '1 minute', now() + interval '5 minutes')`,
      [id, input.series ?? 0, input.attempt ?? 1],
    );
  }
  return id;
}

/** A task_runs row for an attempt. */
export async function insertRun(
  db: Db,
  taskId: string,
  run: { series?: number; attempt: number; status: string; exit_code?: number | null; output_tail?: string },
): Promise<void> {
  await db.query(
    `INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, finished_at, exit_code,
       error, output_tail, output_truncated)
     VALUES ($1, $2, $3, $4, 'worker-test', now() - interval '30 seconds',
       CASE WHEN $4 <> 'running' THEN now() END, $5, CASE WHEN $4 = 'failed' THEN 'exit code 1' END, $6, false)`,
    [taskId, run.series ?? 0, run.attempt, run.status, run.exit_code ?? null, run.output_tail ?? null],
  );
}

/**
 * A Task object as the stores return it, for unit tests of the core's rules (no database):
 * queued and due by default; a running task holds a lease and has started, a finished one has
 * its finished_at, as the schema demands. `at` is when it was created and last written; its
 * run_at is a second before, so it is due.
 */
export function buildTask(overrides: Partial<Task> = {}, at = new Date("2026-05-01T12:00:00.000Z")): Task {
  const status = overrides.status ?? "queued";
  const running = status === "running";
  const finished = isFinished(status);
  const started = running || finished;
  return {
    id: "tsk_1",
    namespace: "default",
    name: "report",
    description: null,
    command: null,
    handler: "noop",
    params: {},
    status,
    priority: 5,
    attempt: started ? 1 : 0,
    series: 0,
    max_attempts: 3,
    infra_retries: 0,
    timeout_seconds: 60,
    progress: null,
    result: null,
    error: null,
    schedule_id: null,
    labels: {},
    run_at: new Date(at.getTime() - 1000),
    created_at: at,
    updated_at: at,
    started_at: started ? at : null,
    finished_at: finished ? at : null,
    lease_owner: running ? "w1" : null,
    lease_expires_at: running ? new Date(at.getTime() + 5 * 60_000) : null,
    ...overrides,
  };
}
