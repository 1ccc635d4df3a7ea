import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRunning } from "../../functions/local/processes.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { REPO_ROOT, startTme, type TmeProcess } from "../helpers/tme-process.js";
import { evidenceCommand, executions } from "./evidence.js";
import { BOOTSTRAP_KEY, call, descendantsOf, type Scratch, scratch, until } from "./harness.js";

let database: TestDatabase;
const cleanups: Array<() => unknown> = [];
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await database.drop();
});

function envOf(s: Scratch, extra: Record<string, string> = {}) {
  return {
    DATABASE_URL: database.url,
    TME_CONFIG_DIR: s.configDir,
    TME_DATA_DIR: s.dataDir,
    TME_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY,
    MAX_CONCURRENT_TASKS: "8",
    ...extra,
  };
}

async function started(env: Record<string, string>): Promise<TmeProcess> {
  const tme = await startTme(env);
  cleanups.push(() => tme.kill9());
  return tme;
}

const tasks = (ids: string[]) =>
  database.db.rows<{ id: string; status: string; attempt: number; infra_retries: number }>(
    "SELECT id, status, attempt, infra_retries FROM tasks WHERE id = ANY($1) ORDER BY id",
    [ids],
  );

/** SIGTERM to TME's own pid (not its group: its commands must hear of it from TME). */
function sigterm(tme: TmeProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => {
    if (tme.child.exitCode !== null) resolve(tme.child.exitCode);
    else tme.child.once("exit", (code) => resolve(code));
  });
  process.kill(tme.child.pid!, "SIGTERM");
  return exited;
}

describe("SIGTERM", () => {
  it("drains: running attempts finish within shutdown_grace_seconds, nothing counted twice", async () => {
    const s = scratch({
      shutdown_grace_seconds: 30,
      lease_seconds: 6,
      heartbeat_seconds: 1,
      poll_interval_ms: 200,
    });
    cleanups.push(s.cleanup);
    const tme = await started(envOf(s));
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await call(tme.url, "POST", "/task/create", {
        name: `drain_${i}`,
        command: evidenceCommand(s.evidence, `drain_${i}`, 3),
        max_attempts: 1,
      });
      expect(res.status).toBe(201);
      ids.push(res.body.id as string);
    }
    await until("8 commands to start", async () => executions(s.evidence).length === 8, 30_000);
    const signalledAt = Date.now();
    expect(await sigterm(tme)).toBe(0);
    const stoppedAfterMs = Date.now() - signalledAt;

    const ran = executions(s.evidence);
    expect(ran).toHaveLength(8);
    // Every command ran its full 3 s: none was killed by the shutdown.
    for (const e of ran) expect(Number(e.endNs! - e.startNs) / 1e6).toBeGreaterThanOrEqual(2900);
    expect((await tasks(ids)).map((t) => [t.status, t.attempt, t.infra_retries])).toEqual(
      ids.map(() => ["succeeded", 1, 0]),
    );
    console.log(
      `[faults] SIGTERM drain: 8 running commands finished, TME exited 0 after ${stoppedAfterMs} ms`,
    );
  }, 90_000);

  it("hands back what outlives the grace without counting the attempt; it runs again after restart", async () => {
    const s = scratch({
      shutdown_grace_seconds: 1,
      kill_grace_seconds: 0.5,
      lease_seconds: 6,
      heartbeat_seconds: 1,
      poll_interval_ms: 200,
    });
    cleanups.push(s.cleanup);
    const env = envOf(s, { MAX_CONCURRENT_TASKS: "4" });
    const first = await started(env);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await call(first.url, "POST", "/task/create", {
        name: `handback_${i}`,
        command: evidenceCommand(s.evidence, `handback_${i}`, 5),
        max_attempts: 1,
      });
      ids.push(res.body.id as string);
    }
    await until("4 commands to start", async () => executions(s.evidence).length === 4, 30_000);
    expect(await sigterm(first)).toBe(0);
    // The commands were stopped (their trap wrote the end line) and the tasks wait, unspent.
    const stopped = executions(s.evidence);
    expect(stopped.every((e) => e.endNs !== undefined && !isRunning(e.pid))).toBe(true);
    expect((await tasks(ids)).map((t) => [t.status, t.attempt, t.infra_retries])).toEqual(
      ids.map(() => ["queued", 1, 1]),
    );

    // max_attempts 1, one attempt made: still theirs to run, because the lost one did not count.
    const second = await started(env);
    await until(
      "the handed-back tasks to succeed",
      async () => (await tasks(ids)).every((t) => t.status === "succeeded"),
      40_000,
    );
    expect((await tasks(ids)).map((t) => [t.attempt, t.infra_retries])).toEqual(ids.map(() => [2, 1]));
    const all = executions(s.evidence);
    expect(all).toHaveLength(8);
    await sigterm(second);
  }, 120_000);

  it("to the pid of npm start stops TME (Docker CMD [npm, start], systemd)", async () => {
    const s = scratch({ shutdown_grace_seconds: 5 });
    cleanups.push(s.cleanup);
    const npm = spawn("npm", ["start", "--silent"], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: "ERROR", PORT: "0", ...envOf(s) },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    cleanups.push(() => {
      try {
        process.kill(-npm.pid!, "SIGKILL");
      } catch {}
    });
    let out = "";
    npm.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    npm.stderr.on("data", (c: Buffer) => {
      out += c.toString();
    });
    await until("npm start to serve", async () => out.includes("TME is running at"), 60_000);
    const tmePids = descendantsOf(npm.pid!).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("bin.mjs");
      } catch {
        return false;
      }
    });
    expect(tmePids.length).toBeGreaterThan(0);
    const signalledAt = Date.now();
    process.kill(npm.pid!, "SIGTERM");
    await until("TME to exit", async () => tmePids.every((pid) => !isRunning(pid)), 30_000);
    console.log(
      `[faults] SIGTERM to npm start's pid ${npm.pid}: TME (pid ${tmePids.join(",")}) exited after ${Date.now() - signalledAt} ms`,
    );
  }, 90_000);
});
