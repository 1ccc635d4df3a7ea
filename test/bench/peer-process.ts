/**
 * One peer queue (graphile-worker or pg-boss) in a process of its own, as TME runs in its
 * own: the harness forks this file, sends a PeerJob, then "go", and reads the figures back
 * over IPC. Only the harness starts it.
 */
import { Logger, run, runMigrations } from "graphile-worker";
import PgBoss from "pg-boss";

export type PeerSystem = "graphile-worker-tuned" | "graphile-worker-default" | "pg-boss";

export interface PeerJob {
  system: PeerSystem;
  mode: "drain" | "pickup";
  databaseUrl: string;
  concurrency: number;
  /** drain: jobs inserted in bulk before "go"; pickup: jobs the harness adds, one at a time. */
  jobs: number;
}

export type PeerMessage =
  | { type: "ready" }
  | { type: "started" }
  | { type: "latencies"; ms: number[] }
  | { type: "error"; message: string };

export const QUEUE = "noop";

const send = (message: PeerMessage) => process.send?.(message);
const silent = new Logger(() => () => {});

/** graphile-worker's batching settings from its performance page; the other mode is its defaults. */
function graphilePreset(system: PeerSystem) {
  return system === "graphile-worker-tuned"
    ? { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } }
    : { worker: {} };
}

async function graphile(job: PeerJob, go: Promise<void>): Promise<() => Promise<void>> {
  const options = { connectionString: job.databaseUrl, logger: silent, noHandleSignals: true };
  await runMigrations(options);
  if (job.mode === "drain") {
    // Bulk insert, as graphile-worker's own perf test does (add_jobs in batches).
    const { makeWorkerUtils } = await import("graphile-worker");
    const utils = await makeWorkerUtils(options);
    for (let offset = 0; offset < job.jobs; offset += 1000) {
      const size = Math.min(1000, job.jobs - offset);
      await utils.addJobs(Array.from({ length: size }, () => ({ identifier: QUEUE, payload: {} })));
    }
    await utils.release();
  }
  const latencies: number[] = [];
  const start = async () => {
    const runner = await run({
      ...options,
      concurrency: job.concurrency,
      preset: graphilePreset(job.system),
      taskList: {
        [QUEUE]: async (_payload, helpers) => {
          if (job.mode === "pickup") {
            latencies.push(Date.now() - new Date(helpers.job.created_at).getTime());
            if (latencies.length === job.jobs) send({ type: "latencies", ms: latencies });
          }
        },
      },
    });
    return runner;
  };
  if (job.mode === "pickup") {
    const runner = await start();
    send({ type: "ready" });
    await go;
    return () => runner.stop();
  }
  send({ type: "ready" });
  await go;
  const runner = await start();
  send({ type: "started" });
  return () => runner.stop();
}

/**
 * pg-boss 10 has no worker concurrency setting: its maintainer's advice is a batch handler
 * (batchSize) that runs its jobs concurrently, so concurrency c is batchSize c with
 * Promise.allSettled; the polling interval is its minimum, 0.5 s.
 */
async function pgBoss(job: PeerJob, go: Promise<void>): Promise<() => Promise<void>> {
  const boss = new PgBoss({
    connectionString: job.databaseUrl,
    supervise: false,
    schedule: false,
    migrate: true,
  });
  boss.on("error", (error) => send({ type: "error", message: String(error) }));
  await boss.start();
  await boss.createQueue(QUEUE);
  for (let offset = 0; offset < job.jobs; offset += 1000) {
    const size = Math.min(1000, job.jobs - offset);
    await boss.insert(Array.from({ length: size }, () => ({ name: QUEUE, data: {} })));
  }
  send({ type: "ready" });
  await go;
  await boss.work(QUEUE, { batchSize: job.concurrency, pollingIntervalSeconds: 0.5 }, async (jobs) => {
    await Promise.allSettled(jobs.map(async () => {}));
  });
  send({ type: "started" });
  return () => boss.stop({ graceful: false, wait: true });
}

process.once("message", (job: PeerJob) => {
  let release!: () => void;
  const go = new Promise<void>((resolve) => {
    release = resolve;
  });
  process.on("message", (message: unknown) => {
    if (message === "go") release();
  });
  const setup = job.system === "pg-boss" ? pgBoss(job, go) : graphile(job, go);
  setup.then(
    (stop) => {
      process.on("message", (message: unknown) => {
        if (message === "stop") void stop().finally(() => process.exit(0));
      });
    },
    (error: unknown) => {
      send({ type: "error", message: error instanceof Error ? error.message : String(error) });
      process.exit(1);
    },
  );
});
