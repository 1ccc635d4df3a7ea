import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AppConfigSchema } from "../../functions/config/schema.js";
import { isRunning } from "../../functions/local/processes.js";
import { isolateCommand, resolveIsolation } from "../../plugins/shell-sandbox.js";
import { SUPERVISOR_SOURCE } from "../../plugins/shell-supervisor.js";
import { hostProcessesWith } from "../helpers/host-processes.js";
import { waitFor } from "../helpers/wait.js";

// Evidence from the process table, not from TME: each command writes its pids to a file, and
// the test checks that those processes are gone.
const scratch = mkdtempSync(path.join(os.tmpdir(), "tme-supervisor-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A command that starts a setsid child (out of its process group) and sleeps. */
function escapingCommand(name: string): { argv: string[]; pidFile: string } {
  const pidFile = path.join(scratch, name);
  return {
    argv: ["/bin/sh", "-c", `setsid sleep 300 & echo $$ $! > ${pidFile}; sleep 300`],
    pidFile,
  };
}

async function pidsOf(pidFile: string): Promise<number[]> {
  const text = await waitFor(
    "the command to write its pids",
    async () => {
      try {
        const t = readFileSync(pidFile, "utf8").trim();
        return t.split(" ").length === 2 ? t : undefined;
      } catch {
        return undefined;
      }
    },
    10_000,
  );
  return text.split(" ").map(Number);
}

function startSupervisor(spec: object) {
  const supervisor = spawn(process.execPath, ["-e", SUPERVISOR_SOURCE], {
    env: {},
    detached: true,
    stdio: ["pipe", "ignore", "ignore", "pipe"],
  });
  supervisor.stdin!.write(`${JSON.stringify(spec)}\n`);
  let reports = "";
  supervisor.stdio[3]!.on("data", (chunk: Buffer) => {
    reports += chunk.toString();
  });
  return { supervisor, reports: () => reports };
}

const base = { env: { PATH: "/usr/bin:/bin" }, kill_grace_ms: 500 };

describe("the per-command supervisor", () => {
  it("kills the command and its setsid child when renewals stop past the deadline (a frozen TME)", async () => {
    const { argv, pidFile } = escapingCommand("deadline");
    const before = Date.now();
    const { supervisor, reports } = startSupervisor({ ...base, argv, deadline_in_ms: 1500 });
    const pids = await pidsOf(pidFile);
    expect(pids.every(isRunning)).toBe(true);
    await waitFor(
      "the command to be killed",
      async () => pids.every((pid) => !isRunning(pid)) || undefined,
      15_000,
    );
    await waitFor("the supervisor to exit", async () => supervisor.exitCode !== null || undefined, 5_000);
    const end = JSON.parse(reports().trim().split("\n").pop()!);
    expect(end.stopped_by).toBe("deadline");
    expect(end.signal).toBe("SIGTERM");
    expect(end.ended_at).toBeGreaterThanOrEqual(before + 1500);
  });

  it("keeps the command running while renewals come", async () => {
    const { argv, pidFile } = escapingCommand("renewed");
    const { supervisor } = startSupervisor({ ...base, argv, deadline_in_ms: 800 });
    const pids = await pidsOf(pidFile);
    for (let i = 0; i < 6; i++) {
      supervisor.stdin!.write(`${JSON.stringify({ renew_in_ms: 800 })}\n`);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(pids.every(isRunning)).toBe(true);
    supervisor.stdin!.write(`${JSON.stringify({ stop: "cancelled" })}\n`);
    await waitFor(
      "the command to be killed",
      async () => pids.every((pid) => !isRunning(pid)) || undefined,
      15_000,
    );
  });

  it("kills the command and its setsid child at once when its parent is killed with SIGKILL", async () => {
    const { argv, pidFile } = escapingCommand("parent");
    // A stand-in for TME: a process that starts the supervisor and is then killed -9.
    const parentScript = `
      const { spawn } = require("node:child_process");
      const s = spawn(process.execPath, ["-e", process.env.SRC], { env: {}, detached: true, stdio: ["pipe", "ignore", "ignore", "pipe"] });
      s.stdin.write(process.env.SPEC + "\\n");
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ["-e", parentScript], {
      env: {
        SRC: SUPERVISOR_SOURCE,
        SPEC: JSON.stringify({ ...base, argv, deadline_in_ms: 600_000 }),
      },
      stdio: "ignore",
    });
    const pids = await pidsOf(pidFile);
    expect(pids.every(isRunning)).toBe(true);
    parent.kill("SIGKILL");
    await waitFor(
      "the command to be killed",
      async () => pids.every((pid) => !isRunning(pid)) || undefined,
      10_000,
    );
  });

  it("in a bubblewrap sandbox: past the deadline the command gets SIGTERM (its trap runs), then the sandbox and its setsid child are gone", async () => {
    const shell = { ...AppConfigSchema.parse({}).shell, sandbox: "required" as const };
    const marker = `${600 + Math.floor(Math.random() * 300)}.9`;
    const isolated = isolateCommand(
      resolveIsolation(shell),
      ["/bin/sh", "-c", `trap 'echo trapped; exit 3' TERM; setsid sleep ${marker} & sleep ${marker} & wait`],
      { PATH: "/usr/bin:/bin" },
      undefined,
    );
    expect(isolated.sandboxed).toBe(true);
    const supervisor = spawn(process.execPath, ["-e", SUPERVISOR_SOURCE], {
      env: {},
      detached: true,
      stdio: ["pipe", "pipe", "ignore", "pipe"],
    });
    let output = "";
    supervisor.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    let reports = "";
    supervisor.stdio[3]!.on("data", (chunk: Buffer) => {
      reports += chunk.toString();
    });
    supervisor.stdin!.write(
      `${JSON.stringify({ ...base, argv: isolated.argv, env: isolated.env, cwd: isolated.cwd, uid: isolated.uid, gid: isolated.gid, sandboxed: true, deadline_in_ms: 1500 })}\n`,
    );
    const inside = await waitFor(
      "the sandboxed sleeps to start",
      async () => {
        const found = hostProcessesWith(`sleep ${marker}`).filter((p) => p.cmdline.startsWith("sleep"));
        return found.length === 2 ? found : undefined;
      },
      10_000,
    );
    if (process.getuid?.() === 0) expect(inside.map((p) => p.uid)).toEqual([65534, 65534]);
    await waitFor(
      "the sandbox to be gone",
      async () => hostProcessesWith(`sleep ${marker}`).length === 0 || undefined,
      15_000,
    );
    await waitFor("the supervisor to exit", async () => supervisor.exitCode !== null || undefined, 5_000);
    const end = JSON.parse(reports.trim().split("\n").pop()!);
    expect(end).toMatchObject({ stopped_by: "deadline", code: 3 });
    expect(output).toBe("trapped\n");
  });
});
