import { execFileSync } from "node:child_process";
import os from "node:os";
import { loadConfig } from "../../functions/config/load.js";
import { REPO_ROOT } from "../helpers/tme-process.js";
import { load, startBareServer } from "./api.js";
import type { PeerSystem } from "./peer-process.js";
import { type DrainFigure, peerDrain, peerPickup, steadily } from "./peers.js";
import {
  adminQuery,
  BenchDatabases,
  type BenchServer,
  openPollConnection,
  openServer,
  taskStorageBytes,
} from "./postgres.js";
import { type BenchResult, compare, type Runs } from "./report.js";
import {
  BENCH_KEY,
  benchConfigDir,
  countByStatus,
  createTask,
  createTasks,
  expectOk,
  rssBytes,
  settledStorage,
  sleep,
  startBenchTme,
  TASK_NAME,
  waitForCount,
} from "./tme.js";

export interface BenchOptions {
  /** Tasks per drain run. */
  tasks: number;
  repeats: number;
  concurrencies: number[];
  /** Tasks of the pickup-latency run, created at pickupRate per second. */
  pickupTasks: number;
  pickupRate: number;
  apiSeconds: number;
  apiConnections: number;
  /** A drain that has not finished by then is stopped; its rate is what finished over the time taken. */
  drainCapSeconds: number;
  /** Queued tasks behind a busy slot while GET /tasks is measured. */
  listingBacklog: number;
  /** A superuser URL of the server to use; default 127.0.0.1:5432 when it answers, else embedded. */
  adminUrl?: string;
  /** Called with the step being run and a fraction of the whole run done (0..1). */
  onProgress?: (fraction: number, step: string) => void;
}

export const FULL: Omit<BenchOptions, "onProgress" | "adminUrl"> = {
  tasks: 5000,
  repeats: 3,
  concurrencies: [24, 64],
  pickupTasks: 500,
  pickupRate: 100,
  apiSeconds: 5,
  apiConnections: 50,
  drainCapSeconds: 8,
  listingBacklog: 100_000,
};

/** About a minute: a smoke of every measurement, not figures to quote. */
export const QUICK: Omit<BenchOptions, "onProgress" | "adminUrl"> = {
  tasks: 1000,
  repeats: 1,
  concurrencies: [24, 64],
  pickupTasks: 100,
  pickupRate: 100,
  apiSeconds: 2,
  apiConnections: 50,
  drainCapSeconds: 5,
  listingBacklog: 20_000,
};

export const PEERS: PeerSystem[] = ["graphile-worker-tuned", "graphile-worker-default", "pg-boss"];

/** Steps of the run with rough weights (seconds), for the progress line. */
function plan(options: BenchOptions): Array<{ id: string; weight: number }> {
  const steps = [{ id: "prepare TME's queue", weight: options.tasks / 300 + 3 }];
  for (let r = 1; r <= options.repeats; r++) {
    for (const c of options.concurrencies) {
      steps.push({
        id: `r${r} drain c=${c} tme`,
        weight: Math.min(options.drainCapSeconds, options.tasks / 100) + 3,
      });
      for (const peer of PEERS)
        steps.push({
          id: `r${r} drain c=${c} ${peer}`,
          weight: Math.min(options.drainCapSeconds, options.tasks / 500) + 1,
        });
    }
    steps.push({ id: `r${r} pickup tme`, weight: options.pickupTasks / options.pickupRate + 4 });
    steps.push({
      id: `r${r} pickup graphile-worker-tuned`,
      weight: options.pickupTasks / options.pickupRate + 1,
    });
    steps.push({ id: `r${r} api tme`, weight: options.apiSeconds * 2 + 4 });
    steps.push({ id: `r${r} api bare`, weight: options.apiSeconds * 2 + 1 });
    steps.push({ id: `r${r} listing tme`, weight: options.listingBacklog / 20_000 + 4 });
  }
  return steps;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export function latencyFigure(ms: number[]): { p50Ms: number; p95Ms: number; p99Ms: number; n: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    n: ms.length,
  };
}

function machine(server: BenchServer, postgresVersion: string) {
  const cpus = os.cpus();
  let commit: string | null = null;
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    }).trim();
  } catch {}
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres: postgresVersion,
    server: server.description,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    commit,
  };
}

/** Runs every measurement `repeats` times, each system on a fresh database, and compares medians. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const startedAt = new Date();
  const steps = plan(options);
  const totalWeight = steps.reduce((sum, s) => sum + s.weight, 0);
  let doneWeight = 0;
  let current = steps[0]!;
  const progress = (detail?: string, within = 0) => {
    const fraction = (doneWeight + current.weight * Math.min(1, within)) / totalWeight;
    options.onProgress?.(fraction, detail ? `${current.id}: ${detail}` : current.id);
  };
  const step = async <T>(id: string, fn: () => Promise<T>): Promise<T> => {
    const found = steps.find((s) => s.id === id);
    if (!found) throw new Error(`bench step not planned: ${id}`);
    current = found;
    progress();
    const value = await fn();
    doneWeight += found.weight;
    progress();
    return value;
  };

  const server = await openServer(options.adminUrl);
  const databases = new BenchDatabases(server);
  await databases.dropAbandoned();
  const config = benchConfigDir();
  const poolMax = loadConfig({ configDir: config.dir, env: {} }).db.pool.max;
  const runs: Runs = { drain: [], pickup: [], api: [], idleRss: [], listing: [], storage: [] };
  try {
    const version = await adminQuery<{ server_version: string }>(server.adminUrl, "SHOW server_version");
    const template = await databases.tmeTemplate();
    const emptyStorage = await taskStorageBytes(template.url);

    // The drain queue is made once, through TME's API, while the task type is paused:
    // every drain run then starts on its own copy (CREATE DATABASE ... TEMPLATE).
    const seed = await step("prepare TME's queue", async () => {
      const db = await databases.create("tme_seed", template.name);
      const tme = await startBenchTme({ databaseUrl: db.url, configDir: config.dir, concurrency: 1 });
      try {
        await expectOk(tme.request("POST", `/task-types/${TASK_NAME}/pause`), "pause");
        await createTasks(tme, options.tasks, 32, (n) => {
          if (n % 100 === 0) progress(`${n}/${options.tasks} created`, n / options.tasks);
        });
        await settledStorage(db.url);
      } finally {
        await tme.stop();
      }
      return db;
    });

    const tmeDrain = async (concurrency: number): Promise<DrainFigure> => {
      const db = await databases.create(`tme_drain_c${concurrency}`, seed.name);
      const tme = await startBenchTme({ databaseUrl: db.url, configDir: config.dir, concurrency });
      const poll = await openPollConnection(db.url);
      try {
        await sleep(500);
        const started = performance.now();
        await expectOk(tme.request("POST", `/task-types/${TASK_NAME}/resume`), "resume");
        // Done is what is no longer queued or running (as graphile-worker's count of the jobs
        // left): tasks_active_idx holds only those, so the poll shrinks with the queue. A task
        // that did not succeed fails the run below.
        const result = await waitForCount(
          async () =>
            options.tasks -
            (await poll.count(
              "SELECT count(*) AS n FROM tasks WHERE status IN ('queued', 'running', 'retrying')",
            )),
          options.tasks,
          options.drainCapSeconds * 1000,
          started,
          (n) => progress(`${n}/${options.tasks}`, n / options.tasks),
        );
        const counts = await countByStatus(db.url);
        const failed = (counts.failed ?? 0) + (counts.timed_out ?? 0) + (counts.cancelled ?? 0);
        if (failed > 0)
          throw new Error(`TME drain: ${failed} tasks did not succeed (${JSON.stringify(counts)})`);
        return {
          tasksPerSecond: result.count / (result.elapsedMs / 1000),
          finished: result.count,
          elapsedMs: result.elapsedMs,
          capped: result.capped,
        };
      } finally {
        await poll.close();
        await tme.stop();
      }
    };

    for (let repeat = 1; repeat <= options.repeats; repeat++) {
      for (const concurrency of options.concurrencies) {
        // The order rotates per repeat, so no system always runs first (or after the noisiest).
        const systems = ["tme", ...PEERS];
        const order = systems.map((_, i) => systems[(i + repeat - 1) % systems.length]!);
        for (const system of order) {
          const figure = await step(`r${repeat} drain c=${concurrency} ${system}`, async () => {
            if (system === "tme") return tmeDrain(concurrency);
            const db = await databases.create(`${system}_c${concurrency}`);
            return peerDrain(
              system as PeerSystem,
              db.url,
              concurrency,
              options.tasks,
              options.drainCapSeconds * 1000,
              (n) => progress(`${n}/${options.tasks}`, n / options.tasks),
            );
          });
          runs.drain.push({ repeat, system, concurrency, ...figure });
        }
      }

      await step(`r${repeat} pickup tme`, async () => {
        const db = await databases.create("tme_pickup", template.name);
        const tme = await startBenchTme({ databaseUrl: db.url, configDir: config.dir, concurrency: 24 });
        try {
          // Idle: started, migrated, nothing queued yet; the loops have settled.
          await sleep(2000);
          runs.idleRss.push({ repeat, bytes: rssBytes(tme.pid) });
          await steadily(
            options.pickupTasks,
            options.pickupRate,
            () => createTask(tme),
            (n) => progress(`${n}/${options.pickupTasks} created`, n / options.pickupTasks),
          );
          await waitForCount(
            async () => (await countByStatus(db.url)).succeeded ?? 0,
            options.pickupTasks,
            30_000,
            performance.now(),
          );
          const rows = await adminQuery<{ ms: number }>(
            db.url,
            "SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms FROM tasks WHERE started_at IS NOT NULL",
          );
          if (rows.length < options.pickupTasks)
            throw new Error(`TME pickup: only ${rows.length} tasks started`);
          runs.pickup.push({ repeat, system: "tme", ...latencyFigure(rows.map((r) => Number(r.ms))) });
          const after = await settledStorage(db.url);
          const tables = Object.fromEntries(
            Object.entries(after).map(([table, bytes]) => [
              table,
              (bytes - (emptyStorage[table] ?? 0)) / options.pickupTasks,
            ]),
          );
          const bytesPerTask = Object.values(tables).reduce((sum, b) => sum + b, 0);
          runs.storage.push({ repeat, bytesPerTask, tables });
        } finally {
          await tme.stop();
        }
      });

      await step(`r${repeat} pickup graphile-worker-tuned`, async () => {
        const db = await databases.create("gw_pickup");
        const ms = await peerPickup(
          "graphile-worker-tuned",
          db.url,
          24,
          options.pickupTasks,
          options.pickupRate,
          (n) => progress(`${n}/${options.pickupTasks} added`, n / options.pickupTasks),
        );
        runs.pickup.push({ repeat, system: "graphile-worker-tuned", ...latencyFigure(ms) });
      });

      const connections = options.apiConnections;
      await step(`r${repeat} api tme`, async () => {
        const db = await databases.create("tme_api", template.name);
        const tme = await startBenchTme({ databaseUrl: db.url, configDir: config.dir, concurrency: 24 });
        try {
          // Created tasks stay queued: the measurement is of accepting them, not running them.
          await expectOk(tme.request("POST", `/task-types/${TASK_NAME}/pause`), "pause");
          const headers = { authorization: `Bearer ${BENCH_KEY}`, "content-type": "application/json" };
          tme.closeConnections();
          progress("POST /task/create", 0.1);
          const create = await load({
            url: `${tme.url}/task/create`,
            method: "POST",
            connections,
            seconds: options.apiSeconds,
            headers,
            body: JSON.stringify({ name: TASK_NAME, params: {} }),
          });
          runs.api.push({ repeat, system: "tme", route: "create", ...create });
          const created = (await createTask(tme)) as { task_id: string };
          tme.closeConnections();
          progress("GET /task/{id}", 0.5);
          const get = await load({
            url: `${tme.url}/task/${created.task_id}`,
            method: "GET",
            connections,
            seconds: options.apiSeconds,
            headers: { authorization: headers.authorization },
          });
          runs.api.push({ repeat, system: "tme", route: "get", ...get });
        } finally {
          await tme.stop();
        }
      });

      await step(`r${repeat} api bare`, async () => {
        const db = await databases.create("bare_api");
        const bare = await startBareServer(db.url, poolMax);
        try {
          progress("INSERT ... RETURNING", 0.1);
          const create = await load({
            url: `${bare.url}/task/create`,
            method: "POST",
            connections,
            seconds: options.apiSeconds,
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ name: TASK_NAME, params: {} }),
          });
          runs.api.push({ repeat, system: "bare", route: "create", ...create });
          const [row] = await adminQuery<{ id: string }>(db.url, "SELECT id FROM bare_tasks LIMIT 1");
          progress("SELECT", 0.5);
          const get = await load({
            url: `${bare.url}/task/${row!.id}`,
            method: "GET",
            connections,
            seconds: options.apiSeconds,
          });
          runs.api.push({ repeat, system: "bare", route: "get", ...get });
        } finally {
          await bare.stop();
        }
      });

      await step(`r${repeat} listing tme`, async () => {
        const db = await databases.create("tme_listing", template.name);
        const tme = await startBenchTme({ databaseUrl: db.url, configDir: config.dir, concurrency: 1 });
        try {
          // The one slot sleeps, so the backlog stays queued and claimable: each row's
          // waiting_reason is the costly kind (slots busy, queued behind others), not "paused".
          await expectOk(
            tme.request("POST", "/task/create", { name: "sleep", params: { seconds: 600 } }),
            "POST /task/create (sleep)",
          );
          progress(`inserting ${options.listingBacklog} queued tasks`, 0.1);
          await adminQuery(
            db.url,
            `INSERT INTO tasks (id, name, handler, timeout_seconds)
             SELECT 'tsk_bench' || lpad(g::text, 9, '0'), $1, 'noop', 60 FROM generate_series(1, $2::int) g`,
            [TASK_NAME, options.listingBacklog],
          );
          const ms: number[] = [];
          for (let i = 0; i < 60; i++) {
            const started = performance.now();
            await expectOk(tme.request("GET", "/tasks?limit=50"), "GET /tasks?limit=50");
            // The first few warm the connections and caches up.
            if (i >= 10) ms.push(performance.now() - started);
          }
          const { p50Ms, p95Ms, n } = latencyFigure(ms);
          runs.listing.push({ repeat, backlog: options.listingBacklog, p50Ms, p95Ms, n });
        } finally {
          await tme.stop();
        }
      });
    }

    const finishedAt = new Date();
    const { onProgress: _, adminUrl: __, ...settings } = options;
    return {
      version: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationSeconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000),
      machine: machine(server, version[0]?.server_version ?? "unknown"),
      options: settings,
      runs,
      comparisons: compare(runs, options.concurrencies),
    };
  } finally {
    config.remove();
    await databases.dropAll();
    await server.stop();
  }
}
