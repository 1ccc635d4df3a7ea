import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { createEngineHarness, type EngineHarness, maxOverlap, type RunRow } from "../helpers/engine.js";
import { REPO_ROOT, startTme, type TmeProcess } from "../helpers/tme-process.js";

let h: EngineHarness;
let configDir: string;
let dataDir: string;
const children: TmeProcess[] = [];

beforeAll(async () => {
  h = await createEngineHarness();
  // A config of its own: short leases, so the killed process's tasks are reaped quickly.
  configDir = mkdtempSync(path.join(os.tmpdir(), "tme-crash-config-"));
  dataDir = mkdtempSync(path.join(os.tmpdir(), "tme-crash-data-"));
  cpSync(path.join(REPO_ROOT, "configurations"), configDir, { recursive: true });
  const appFile = path.join(configDir, "app_config.yaml");
  const app = parse(readFileSync(appFile, "utf8"));
  app.worker = {
    ...app.worker,
    lease_seconds: 3,
    heartbeat_seconds: 1,
    kill_grace_seconds: 0.5,
    poll_interval_ms: 200,
  };
  writeFileSync(appFile, stringify(app));
});
afterAll(async () => {
  for (const child of children) await child.kill9();
  await h.close();
  rmSync(configDir, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

const env = () => ({
  DATABASE_URL: h.database.url,
  TME_CONFIG_DIR: configDir,
  TME_DATA_DIR: dataDir,
  MAX_CONCURRENT_TASKS: "8",
  TME_BOOTSTRAP_API_KEY: "crash-test-bootstrap-key-0123456789",
});

const count = async (where: string) =>
  (await h.database.db.rows<{ n: number }>(`SELECT count(*) AS n FROM tasks WHERE ${where}`))[0]!.n;

describe("crash recovery", () => {
  it("after kill -9 mid-run and a restart, every task ends terminal, none lost, no attempts overlap", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 500; i++) ids.push((await h.create({ name: "sleep", params: { seconds: 0.1 } })).id);

    const first = await startTme(env());
    children.push(first);
    await h.waitFor(async () => (await count("status = 'succeeded'")) >= 120, 30_000, "120 tasks to succeed");
    await first.kill9();
    const runningAtKill = await count("status = 'running'");
    const doneAtKill = await count("status = 'succeeded'");
    expect(doneAtKill).toBeLessThan(500);
    // Killed mid-run: it held leases, which the restarted process must reap.
    expect(runningAtKill).toBeGreaterThan(0);

    const second = await startTme(env());
    children.push(second);
    await h.waitFor(
      async () => (await count("status IN ('succeeded', 'failed', 'timed_out', 'cancelled')")) === 500,
      45_000,
      "all 500 tasks to finish",
    );
    await second.stop();

    expect(await count("true")).toBe(500);
    expect(await count("status = 'succeeded'")).toBe(500);

    const runs = await h.database.db.rows<RunRow>("SELECT * FROM task_runs ORDER BY task_id, started_at, id");
    expect(runs.filter((r) => r.finished_at === null)).toEqual([]);
    // Every task's attempts, in order, each finished before the next began.
    const byTask = new Map<string, RunRow[]>();
    for (const run of runs) byTask.set(run.task_id, [...(byTask.get(run.task_id) ?? []), run]);
    expect(byTask.size).toBe(500);
    for (const [taskId, taskRuns] of byTask) {
      for (let i = 1; i < taskRuns.length; i++) {
        const previous = taskRuns[i - 1]!;
        const next = taskRuns[i]!;
        if (previous.finished_at!.getTime() > next.started_at.getTime()) {
          throw new Error(`task ${taskId}: attempt ${previous.attempt} overlaps attempt ${next.attempt}`);
        }
        expect(next.attempt).toBe(previous.attempt + 1);
      }
      expect(taskRuns.filter((r) => r.status === "succeeded")).toHaveLength(1);
    }
    // Each process ran at most MAX_CONCURRENT_TASKS (8, from its environment) at once, as its
    // runs record: when the work ran. A lost run's interval is only what the reaper knows, from
    // its claim until the reap; the killed process's tasks waiting in its local queue, and those
    // whose end it had not written yet, are lost runs too, so they are counted below, not here.
    const byWorker = new Map<string, RunRow[]>();
    for (const run of runs.filter((r) => r.status !== "lost"))
      byWorker.set(run.worker_id, [...(byWorker.get(run.worker_id) ?? []), run]);
    expect(byWorker.size).toBe(2);
    for (const workerRuns of byWorker.values()) {
      const most = maxOverlap(workerRuns);
      expect(most).toBeLessThanOrEqual(8);
      expect(most).toBeGreaterThan(1);
    }
    // What the killed process held was reaped: its open runs ended 'lost' and were run again.
    const lost = runs.filter((r) => r.status === "lost");
    expect(lost.length).toBe(runningAtKill);
    expect(lost.every((r) => r.error?.includes("lease expired"))).toBe(true);
    const reaped = await h.database.db.rows<{ n: number }>(
      "SELECT count(*) AS n FROM task_events WHERE type = 'task.retrying' AND data->>'error' LIKE 'worker lost%'",
    );
    expect(reaped[0]!.n).toBe(runningAtKill);
  }, 120_000);
});
