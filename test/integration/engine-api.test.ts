import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRunning } from "../../functions/local/processes.js";
import { taskMaintenance, workerPool } from "../../functions/local/worker-pool.js";
import { createTestApp, type TestApp } from "../helpers/test-app.js";

let t: TestApp;
let stopEngine: () => Promise<void>;
const scratch = mkdtempSync(path.join(os.tmpdir(), "tme-engine-api-"));

beforeAll(async () => {
  t = await createTestApp({
    app: {
      worker: { lease_seconds: 30, heartbeat_seconds: 1, poll_interval_ms: 200, kill_grace_seconds: 1 },
    },
  });
  const pool = workerPool(t.app, { slots: 2 });
  const maintenance = taskMaintenance(t.app);
  await pool.start();
  maintenance.start();
  stopEngine = async () => {
    await pool.stop();
    await maintenance.stop();
  };
});
afterAll(async () => {
  await stopEngine();
  await t.close();
});

async function until<T>(fn: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("the engine behind the HTTP API", () => {
  it("runs a created task to succeeded; /runs shows the attempt with its output", async () => {
    const created = await t.request("POST", "/task/create", {
      body: { name: "api_echo", command: "echo via api" },
    });
    expect(created.status).toBe(201);
    const id = created.body.task_id;
    const done = await until(
      async () => {
        const got = await t.request("GET", `/task/${id}`);
        return got.body.status === "succeeded" ? got.body : undefined;
      },
      10_000,
      "the task to succeed",
    );
    expect(done).toMatchObject({ attempt: 1, result: { exit_code: 0, output: "via api\n" } });
    const runs = await t.request("GET", `/task/${id}/runs`);
    expect(runs.body).toMatchObject([
      { attempt: 1, status: "succeeded", exit_code: 0, output_tail: "via api\n" },
    ]);
  });

  it("POST /task/{id}/cancel kills a running command and its grandchildren within 2 s", async () => {
    const pidFile = path.join(scratch, "pids");
    const script = path.join(scratch, "fork.sh");
    writeFileSync(
      script,
      `#!/bin/sh\necho $$ > ${pidFile}\nsleep 30 &\necho $! >> ${pidFile}\nsleep 30 &\necho $! >> ${pidFile}\nwait\n`,
      { mode: 0o755 },
    );
    const created = await t.request("POST", "/task/create", { body: { name: "api_fork", command: script } });
    const id = created.body.task_id;
    const pids = await until(
      async () => {
        try {
          const list = readFileSync(pidFile, "utf8").trim().split("\n").map(Number);
          return list.length === 3 ? list : undefined;
        } catch {
          return undefined;
        }
      },
      5000,
      "the script to start",
    );
    const cancelledAt = Date.now();
    const cancel = await t.request("POST", `/task/${id}/cancel`);
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe("cancelled");
    await until(
      async () => (pids.every((p) => !isRunning(p)) ? true : undefined),
      2000,
      "every pid to be gone",
    );
    expect(Date.now() - cancelledAt).toBeLessThan(2000);
    const runs = await until(
      async () => {
        const r = await t.request("GET", `/task/${id}/runs`);
        return r.body[0]?.status === "cancelled" ? r.body : undefined;
      },
      3000,
      "the run to close as cancelled",
    );
    expect(runs).toHaveLength(1);
    expect((await t.request("GET", `/task/${id}`)).body.status).toBe("cancelled");
  });
});
