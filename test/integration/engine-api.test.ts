import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRunning } from "../../functions/local/processes.js";
import { taskMaintenance, workerPool } from "../../functions/local/worker-pool.js";
import { FAST_ENGINE } from "../helpers/engine.js";
import { withTestApp } from "../helpers/test-app.js";
import { waitFor } from "../helpers/wait.js";

let stopEngine: () => Promise<void>;
const scratch = mkdtempSync(path.join(os.tmpdir(), "tme-engine-api-"));

const t = withTestApp({
  // Outside the sandbox: the cancel test reads the pids its script writes (a sandbox's pids
  // are its own; test/e2e/command-sandbox.test.ts cancels a sandboxed command).
  env: { SHELL_SANDBOX: "none" },
  app: {
    worker: { ...FAST_ENGINE.worker, max_infra_retries: 5 },
  },
});
beforeAll(async () => {
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
});

const until = <T>(fn: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> =>
  waitFor(what, fn, timeoutMs, 25);

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

describe("flow control through the API, with the engine running", () => {
  const statusOf = async (id: string) => (await t.request("GET", `/task/${id}`)).body.status;

  it("a type paused with POST /task-types/{name}/pause runs nothing until resumed, then runs it all", async () => {
    expect((await t.request("POST", "/task-types/noop_gate/pause")).status).toBe(200);
    const held = [];
    for (let i = 0; i < 3; i++)
      held.push((await t.request("POST", "/task/create", { body: { name: "noop_gate" } })).body.id);
    const other = (await t.request("POST", "/task/create", { body: { name: "noop_free" } })).body.id;
    await until(
      async () => ((await statusOf(other)) === "succeeded" ? true : undefined),
      5000,
      "the free task",
    );
    await new Promise((r) => setTimeout(r, 600)); // three poll intervals
    for (const id of held) {
      expect((await t.request("GET", `/task/${id}`)).body).toMatchObject({
        status: "queued",
        waiting_reason: "task type paused",
      });
    }
    expect((await t.request("GET", "/tasks?name=noop_gate&status=running,succeeded")).body).toEqual([]);

    expect((await t.request("POST", "/task-types/noop_gate/resume")).status).toBe(200);
    for (const id of held)
      await until(async () => ((await statusOf(id)) === "succeeded" ? true : undefined), 5000, `task ${id}`);
  });

  it("restart of a finished task runs it again as a new series; pause and resume of a delayed one holds it", async () => {
    const created = await t.request("POST", "/task/create", {
      body: { name: "api_again", command: "echo again" },
    });
    const id = created.body.id;
    await until(async () => ((await statusOf(id)) === "succeeded" ? true : undefined), 5000, "first run");
    expect((await t.request("POST", `/task/${id}/restart`)).body.status).toBe("queued");
    await until(async () => ((await statusOf(id)) === "succeeded" ? true : undefined), 5000, "second run");
    const runs = (await t.request("GET", `/task/${id}/runs`)).body;
    expect(
      runs.map((r: { series: number; attempt: number; status: string }) => [r.series, r.attempt, r.status]),
    ).toEqual([
      [0, 1, "succeeded"],
      [1, 1, "succeeded"],
    ]);

    const runAt = new Date(Date.now() + 500).toISOString();
    const delayed = (
      await t.request("POST", "/task/create", {
        body: { name: "api_delayed", command: "true", run_at: runAt },
      })
    ).body.id;
    expect((await t.request("POST", `/task/${delayed}/pause`)).body.status).toBe("paused");
    await new Promise((r) => setTimeout(r, 1000)); // past its run_at
    expect(await statusOf(delayed)).toBe("paused");
    expect((await t.request("POST", `/task/${delayed}/resume`)).body.status).toBe("queued");
    await until(
      async () => ((await statusOf(delayed)) === "succeeded" ? true : undefined),
      5000,
      "the resumed task",
    );
  });
});
