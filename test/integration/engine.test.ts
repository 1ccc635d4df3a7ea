import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cancelTask } from "../../functions/core/tasks/control-task.js";
import { createEngineHarness, type EngineHarness, isAlive } from "../helpers/engine.js";

let h: EngineHarness;
const scratch = mkdtempSync(path.join(os.tmpdir(), "tme-engine-"));

beforeAll(async () => {
  h = await createEngineHarness({
    // Outside the sandbox: these tests read the pids each script writes and look for them in
    // the host's process table (a sandbox's pids are its own). The same kills inside the
    // sandbox: test/integration/shell-supervisor.test.ts, shell-plugin.test.ts, lease-loss.test.ts
    // and test/e2e/command-sandbox.test.ts.
    app: { MAX_CONCURRENT_TASKS: 3, shell: { sandbox: "none" } },
    plugins: {
      "limited_*": { plugin: "sleep", export: "handler", concurrency: 2 },
      "single_*": { plugin: "shell", export: "handler", concurrency: 1 },
    },
  });
  await h.startPool();
});
afterAll(async () => {
  await h.close();
});

const events = async (id: string) =>
  (
    await h.database.db.rows<{ type: string }>(
      "SELECT type FROM task_events WHERE task_id = $1 ORDER BY id",
      [id],
    )
  ).map((e) => e.type);

/** A script that starts two grandchildren and writes every pid it started, then waits. */
function forkingScript(name: string): { script: string; pidFile: string } {
  const pidFile = path.join(scratch, `${name}.pids`);
  const script = path.join(scratch, `${name}.sh`);
  writeFileSync(
    script,
    `#!/bin/sh\necho $$ > ${pidFile}\nsleep 30 &\necho $! >> ${pidFile}\nsh -c 'sleep 30' &\necho $! >> ${pidFile}\necho started\nwait\n`,
    { mode: 0o755 },
  );
  return { script, pidFile };
}

async function pidsOf(pidFile: string): Promise<number[]> {
  return h.waitFor(
    async () => {
      try {
        const pids = readFileSync(pidFile, "utf8").trim().split("\n").map(Number);
        return pids.length === 3 && pids.every((p) => p > 0) ? pids : undefined;
      } catch {
        return undefined;
      }
    },
    5000,
    "the script's pids",
  );
}

describe("the execution engine (local pool)", () => {
  it("runs a command to succeeded with its output, exit code and events", async () => {
    const task = await h.create({ name: "greet", command: "echo hello world" });
    const done = await h.waitForStatus(task.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({
      status: "succeeded",
      attempt: 1,
      error: null,
      result: { exit_code: 0, output: "hello world\n" },
    });
    expect(done.finished_at).not.toBeNull();
    const runs = await h.runs(task.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      status: "succeeded",
      attempt: 1,
      exit_code: 0,
      output_tail: "hello world\n",
      output_truncated: false,
    });
    expect(runs[0]!.pid).toBeGreaterThan(0);
    expect(await events(task.id)).toEqual(["task.created", "task.started", "task.succeeded"]);
  });

  it("retries a failing command with backoff until max_attempts, keeping every attempt", async () => {
    const task = await h.create({ name: "flaky", command: "sh -c 'echo boom >&2; exit 3'", max_attempts: 3 });
    const done = await h.waitForStatus(task.id, ["failed", "succeeded"]);
    expect(done.status).toBe("failed");
    expect(done.attempt).toBe(3);
    expect(done.error).toContain("exit code 3");
    expect(done.error).toContain("boom");
    const runs = await h.runs(task.id);
    expect(runs.map((r) => [r.attempt, r.status, r.exit_code])).toEqual([
      [1, "failed", 3],
      [2, "failed", 3],
      [3, "failed", 3],
    ]);
    expect(runs.every((r) => r.output_tail === "boom\n")).toBe(true);
    expect(await events(task.id)).toEqual([
      "task.created",
      "task.started",
      "task.retrying",
      "task.started",
      "task.retrying",
      "task.started",
      "task.failed",
    ]);
  });

  it("fails at once, without retries, on a permanent error", async () => {
    const task = await h.create({ name: "sleep_fails", params: { seconds: 0, fail: true }, max_attempts: 5 });
    const done = await h.waitForStatus(task.id, ["failed", "succeeded"]);
    expect(done).toMatchObject({ status: "failed", attempt: 1, error: "asked to fail" });
  });

  it("times out `sleep 30` with timeout_seconds 1 within 3 s and leaves no process of it behind", async () => {
    const { script, pidFile } = forkingScript("timeout");
    const started = Date.now();
    const task = await h.create({ name: "slow", command: script, timeout_seconds: 1, max_attempts: 3 });
    const pids = await pidsOf(pidFile);
    const done = await h.waitForStatus(task.id, ["timed_out", "failed", "succeeded"], 5000);
    expect(done.status).toBe("timed_out");
    expect(Date.now() - started).toBeLessThan(3000);
    // timed_out ends the series: no second attempt.
    expect(done.attempt).toBe(1);
    // Gone by the time the task says timed_out: the attempt ends only once every holder of the
    // command's output pipes (the grandchildren too) has exited.
    expect(pids.filter((p) => isAlive(p))).toEqual([]);
    const runs = await h.runs(task.id);
    expect(runs).toMatchObject([{ status: "timed_out", output_tail: "started\n" }]);
    expect(await events(task.id)).toEqual(["task.created", "task.started", "task.timed_out"]);
  });

  it("kills a command that ignores SIGTERM with SIGKILL after worker.kill_grace_seconds", async () => {
    const pidFile = path.join(scratch, "stubborn.pids");
    const script = path.join(scratch, "stubborn.sh");
    // trap '' TERM: the shell and the children it starts ignore SIGTERM.
    writeFileSync(
      script,
      `#!/bin/sh\ntrap '' TERM\necho $$ > ${pidFile}\nsleep 30 &\necho $! >> ${pidFile}\nsleep 30 &\necho $! >> ${pidFile}\nwait\n`,
      { mode: 0o755 },
    );
    const task = await h.create({ name: "stubborn", command: script, timeout_seconds: 1 });
    const pids = await pidsOf(pidFile);
    const done = await h.waitForStatus(task.id, ["timed_out", "failed", "succeeded"], 6000);
    expect(done.status).toBe("timed_out");
    // SIGTERM at 1 s is ignored; SIGKILL follows after the grace (1 s in these tests).
    const ranMs = done.finished_at!.getTime() - done.started_at!.getTime();
    expect(ranMs).toBeGreaterThanOrEqual(1900);
    await h.waitFor(async () => pids.every((p) => !isAlive(p)), 2000, "the process group to die");
    expect(await h.runs(task.id)).toMatchObject([{ status: "timed_out", exit_code: null }]);
  });

  it("cancel of a running task (API side: UPDATE + pg_notify) kills its process group within 2 s", async () => {
    const { script, pidFile } = forkingScript("cancel");
    const task = await h.create({ name: "to_cancel", command: script, timeout_seconds: 60 });
    const pids = await pidsOf(pidFile);
    await h.waitForStatus(task.id, ["running"]);
    const cancelledAt = Date.now();
    await h.database.db.transaction(async (tx) => {
      await tx.query(
        `UPDATE tasks SET status = 'cancelled', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL WHERE id = $1`,
        [task.id],
      );
      await tx.query("SELECT pg_notify('tme_task_control', $1)", [task.id]);
    });
    await h.waitFor(async () => pids.every((p) => !isAlive(p)), 2000, "the process group to die within 2 s");
    expect(Date.now() - cancelledAt).toBeLessThan(2000);
    const runs = await h.waitFor(async () => {
      const r = await h.runs(task.id);
      return r[0]?.finished_at ? r : undefined;
    });
    expect(runs).toMatchObject([{ status: "cancelled" }]);
    expect((await h.task(task.id)).status).toBe("cancelled");
  });

  it("keeps a type's slot taken until a cancelled command's process is really gone", async () => {
    const pidFile = path.join(scratch, "slow-to-die.pid");
    const script = path.join(scratch, "slow-to-die.sh");
    writeFileSync(script, `#!/bin/sh\ntrap '' TERM\necho $$ > ${pidFile}\nsleep 30\n`, { mode: 0o755 });
    const first = await h.create({ name: "single_job", command: script });
    const leader = await h.waitFor(async () => {
      try {
        return Number(readFileSync(pidFile, "utf8").trim()) || undefined;
      } catch {
        return undefined;
      }
    });
    const second = await h.create({ name: "single_job", command: "true" });
    await cancelTask(
      { control: h.app.taskControl, config: h.app.config.app, now: () => new Date() },
      "default",
      first.id,
    );
    await h.waitForStatus(second.id, ["succeeded"], 5000);
    // The first command ignored SIGTERM and lived until SIGKILL, a grace later: the second
    // started only after it ended, so one command of this type ran at a time.
    const [firstRun] = await h.runs(first.id);
    const [secondRun] = await h.runs(second.id);
    expect(firstRun).toMatchObject({ status: "cancelled" });
    expect(secondRun!.started_at.getTime()).toBeGreaterThanOrEqual(firstRun!.finished_at!.getTime());
    expect(isAlive(leader)).toBe(false);
  });
});
