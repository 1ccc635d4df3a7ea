import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../functions/config/load.js";
import { AppConfigSchema } from "../../functions/config/schema.js";
import { resolveIsolation } from "../../plugins/shell-sandbox.js";
import { createEngineHarness, type EngineHarness } from "../helpers/engine.js";
import { REPO_ROOT } from "../helpers/tme-process.js";

// The sandbox's settings, each for real (bubblewrap is installed here and in CI): the network
// switch, the operator's extra paths, and what it refuses.
const dirs: string[] = [];
const harnesses: EngineHarness[] = [];
afterAll(async () => {
  for (const h of harnesses) await h.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const defaults = AppConfigSchema.parse({}).shell;

async function engine(shell: Partial<typeof defaults>) {
  const h = await createEngineHarness({
    app: { shell: { ...shell, sandbox: "required", env_allowlist: ["PATH"] } },
  });
  harnesses.push(h);
  await h.startPool({ slots: 1 });
  return h;
}

async function run(h: EngineHarness, command: string, extra: Record<string, unknown> = {}) {
  const task = await h.create({ name: "settings", command, max_attempts: 2, ...extra });
  const done = await h.waitForStatus(task.id, ["succeeded", "failed", "timed_out"]);
  const [first] = await h.runs(task.id);
  return { task: done, output: first?.output_tail ?? "" };
}

/** A connection from inside the sandbox to the PostgreSQL server the tests use (loopback). */
function connectTo(port: number): string {
  const script = `require("net").connect(${port}, "127.0.0.1").on("connect", () => { console.log("connected"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(1); })`;
  return `${process.execPath} -e '${script}'`;
}

const pgPort = Number(new URL(process.env.TEST_DATABASE_URL ?? "postgres://x@127.0.0.1:5432/x").port || 5432);

describe("shell.network", () => {
  it("none: the sandbox has only a loopback of its own, so the host's PostgreSQL is not there", async () => {
    const h = await engine({ network: "none" });
    const { task, output } = await run(h, connectTo(pgPort));
    expect(task.status).toBe("failed");
    expect(output.trim()).toBe("ECONNREFUSED");
  });

  it("allow (the default): the host's network, loopback services included", async () => {
    const h = await engine({ network: "allow" });
    const { task, output } = await run(h, connectTo(pgPort));
    expect(task.status).toBe("succeeded");
    expect(output.trim()).toBe("connected");
  });
});

describe("shell.sandbox_read_only and sandbox_read_write", () => {
  it("shows the operator's paths at the same place, writable only where asked, owned by uid 65534 on the host", async () => {
    const jobs = mkdtempSync(path.join(os.tmpdir(), "tme-jobs-"));
    const out = mkdtempSync(path.join(os.tmpdir(), "tme-out-"));
    dirs.push(jobs, out);
    chmodSync(jobs, 0o755);
    chmodSync(out, 0o777);
    const h = await engine({ sandbox_read_only: [jobs], sandbox_read_write: [out] });
    const wrote = await run(h, `sh -c 'echo hi > ${out}/result && touch ${jobs}/x'`);
    expect(wrote.task.status).toBe("failed");
    expect(wrote.output).toContain(`${jobs}/x': Read-only file system`);
    expect(readFileSync(path.join(out, "result"), "utf8")).toBe("hi\n");
    expect(statSync(path.join(out, "result")).uid).toBe(
      process.getuid?.() === 0 ? 65534 : process.getuid?.(),
    );
  });

  it("refuses a path that overlaps TME's repository or data directory, in one line", () => {
    for (const [key, value] of [
      ["sandbox_read_only", REPO_ROOT],
      ["sandbox_read_write", path.join(REPO_ROOT, "plugins")],
      ["sandbox_read_only", "/"],
    ] as const) {
      expect(() => resolveIsolation({ ...defaults, sandbox: "required", [key]: [value] }), value).toThrow(
        ConfigError,
      );
      expect(() => resolveIsolation({ ...defaults, sandbox: "required", [key]: [value] })).toThrow(
        new RegExp(`^shell\\.${key}: ${value.replace(/[/.]/g, "\\$&")} overlaps TME's own `),
      );
    }
  });
});

describe("what the sandbox cannot see fails at once, without a retry", () => {
  it("a program outside it, and a params.cwd outside it", async () => {
    const h = await engine({});
    const program = await run(h, path.join(REPO_ROOT, "functions/cli/bin.mjs"));
    expect(program.task).toMatchObject({ status: "failed", attempt: 1 });
    expect(program.task.error).toContain("not found in the sandbox");
    const cwd = await run(h, "pwd", { params: { cwd: REPO_ROOT } });
    expect(cwd.task).toMatchObject({ status: "failed", attempt: 1 });
    expect(cwd.task.error).toContain(`params.cwd ${REPO_ROOT} is not visible in the sandbox`);
    const inside = await run(h, "pwd", { params: { cwd: "/usr" } });
    expect(inside.output).toBe("/usr\n");
  });
});

describe("required, where no start refused it (the cloud's API and worker)", () => {
  it("a command task is a 422 at create that says why, when bubblewrap cannot run", async () => {
    const h = await createEngineHarness({
      app: { shell: { sandbox: "required", bwrap_path: "/nonexistent/bwrap" } },
    });
    harnesses.push(h);
    await expect(h.create({ name: "x", command: "id" })).rejects.toMatchObject({
      status: 422,
      details: [
        {
          path: "command",
          message: expect.stringContaining(
            "shell.sandbox is required but bubblewrap cannot run commands here (/nonexistent/bwrap does not exist)",
          ),
        },
      ],
    });
  });
});
