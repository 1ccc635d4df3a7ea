import { PluginRegistry } from "../../functions/adapters/plugins/plugin-registry.js";
import { loadConfig } from "../../functions/config/load.js";
import type { Config, PluginMapping } from "../../functions/config/schema.js";
import { type AppContext, createAppContext } from "../../functions/context.js";
import { type CreateTaskInput, createTask } from "../../functions/core/tasks/create-task.js";
import type { Task } from "../../functions/core/tasks/task.js";
import { taskMaintenance, workerPool } from "../../functions/local/worker-pool.js";
import { createLogger } from "../../functions/logging/logger.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

type DeepPartialApp = { [K in keyof Config["app"]]?: Partial<Config["app"][K]> | Config["app"][K] };

export interface EngineHarness {
  app: AppContext;
  database: TestDatabase;
  create(input: CreateTaskInput, namespace?: string): Promise<Task>;
  task(id: string): Promise<Task>;
  runs(id: string): Promise<RunRow[]>;
  /** Polls fn until it returns a truthy value, or fails after timeoutMs. */
  waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs?: number, what?: string): Promise<T>;
  waitForStatus(id: string, statuses: string[], timeoutMs?: number): Promise<Task>;
  /** A worker pool, and unless told otherwise the reaper/promoter loop beside it. */
  startPool(
    options?: Parameters<typeof workerPool>[1] & { maintenance?: boolean },
  ): Promise<ReturnType<typeof workerPool>>;
  close(): Promise<void>;
}

export interface RunRow {
  id: number;
  task_id: string;
  series: number;
  attempt: number;
  status: string;
  worker_id: string;
  pid: number | null;
  started_at: Date;
  finished_at: Date | null;
  exit_code: number | null;
  error: string | null;
  output_tail: string | null;
  output_truncated: boolean;
}

/** Engine settings fast enough for tests: short leases, quick retries, a quick kill. */
export const FAST_ENGINE: DeepPartialApp = {
  retry: { base_delay_seconds: 0.05, max_delay_seconds: 0.2 },
  worker: {
    lease_seconds: 30,
    heartbeat_seconds: 1,
    poll_interval_ms: 200,
    kill_grace_seconds: 1,
    shutdown_grace_seconds: 1,
  },
};

/**
 * An AppContext on the test file's own database with its own config (app overrides merged one
 * level deep, extra plugin mappings), and worker pools that are stopped on close.
 */
export async function createEngineHarness(
  overrides: { app?: DeepPartialApp; plugins?: Record<string, PluginMapping> } = {},
): Promise<EngineHarness> {
  const database = await createTestDatabase();
  const base = loadConfig({ configDir: "configurations", env: {} });
  const app = { ...base.app } as Record<string, unknown>;
  for (const [key, value] of Object.entries({ ...FAST_ENGINE, ...overrides.app })) {
    const current = app[key];
    app[key] =
      typeof value === "object" && value !== null && !Array.isArray(value) && typeof current === "object"
        ? { ...(current as object), ...(FAST_ENGINE as Record<string, object>)[key], ...value }
        : value;
  }
  const config: Config = {
    ...base,
    app: app as Config["app"],
    plugins: { tasks: { ...base.plugins.tasks, ...overrides.plugins } },
  };
  const logger = createLogger(process.env.TEST_LOG_LEVEL === "DEBUG" ? "DEBUG" : "ERROR");
  const context = createAppContext(
    config,
    database.db,
    database.url,
    logger,
    await PluginRegistry.load(config.plugins),
  );
  const pools: Array<{ stop(): Promise<void> }> = [];
  const waitFor = async <T>(
    fn: () => Promise<T | undefined | false>,
    timeoutMs = 10_000,
    what = "condition",
  ) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await fn();
      if (value) return value as T;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const task = async (id: string) =>
    (await database.db.rows<Task>("SELECT * FROM tasks WHERE id = $1", [id]))[0]!;
  return {
    app: context,
    database,
    create: (input, namespace = "default") =>
      createTask(
        { tasks: context.tasks, plugins: context.plugins, config: context.config.app, now: () => new Date() },
        namespace,
        input,
      ).then((stored) => stored.task),
    task,
    runs: (id) =>
      database.db.rows<RunRow>("SELECT * FROM task_runs WHERE task_id = $1 ORDER BY series, attempt", [id]),
    waitFor,
    waitForStatus: (id, statuses, timeoutMs = 10_000) =>
      waitFor(
        async () => {
          const t = await task(id);
          return statuses.includes(t.status) ? t : undefined;
        },
        timeoutMs,
        `task ${id} to be ${statuses.join("|")}`,
      ),
    async startPool(options = {}) {
      const pool = workerPool(context, options);
      await pool.start();
      pools.push(pool);
      if (options.maintenance !== false) {
        const maintenance = taskMaintenance(context);
        maintenance.start();
        pools.push(maintenance);
        // Stopping the pool stops its reaper too: a reaper left running would race the
        // explicit reaps of later tests in the same file.
        const stopPool = pool.stop.bind(pool);
        pool.stop = async () => {
          await stopPool();
          await maintenance.stop();
        };
      }
      return pool;
    },
    async close() {
      for (const pool of pools) await pool.stop();
      await database.drop();
    },
  };
}

/** True while a process exists and is not a zombie (a dead child nobody reaped yet). */
export { isRunning as isAlive } from "../../functions/local/processes.js";

/** The most runs that were open at one instant, from their [started_at, finished_at] intervals. */
export function maxOverlap(runs: Array<Pick<RunRow, "started_at" | "finished_at">>): number {
  const points = runs.flatMap((r) => [
    { t: r.started_at.getTime(), d: 1 },
    { t: (r.finished_at ?? new Date()).getTime(), d: -1 },
  ]);
  // An end at the same instant as a start is not an overlap: ends first.
  points.sort((a, b) => a.t - b.t || a.d - b.d);
  let open = 0;
  let max = 0;
  for (const p of points) {
    open += p.d;
    max = Math.max(max, open);
  }
  return max;
}
