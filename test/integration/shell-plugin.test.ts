import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTask } from "../../functions/core/tasks/create-task.js";
import { createEngineHarness, type EngineHarness } from "../helpers/engine.js";
import { hostProcessesWith } from "../helpers/host-processes.js";

let h: EngineHarness;
const scratch = mkdtempSync(path.join(os.tmpdir(), "tme-shell-"));
// Its scripts run in the sandbox (shell.sandbox auto, bubblewrap installed), as uid 65534, which
// sees this directory read-only through shell.sandbox_read_only.
chmodSync(scratch, 0o755);

beforeAll(async () => {
  // Secrets in TME's own environment that a command must never see.
  process.env.AWS_SECRET_ACCESS_KEY = "aws-secret-do-not-leak";
  process.env.DATABASE_URL_TEST_ONLY = "postgres://secret@db";
  process.env.TME_BOOTSTRAP_API_KEY_TEST = "tme-secret-do-not-leak";
  process.env.TME_SHELL_TEST_VISIBLE = "x";
  h = await createEngineHarness({
    app: {
      shell: {
        allow_shell: false,
        allowed_commands: ["*"],
        // Listed on purpose: the denylist wins over a careless allowlist.
        env_allowlist: [
          "PATH",
          "HOME",
          "AWS_SECRET_ACCESS_KEY",
          "DATABASE_URL_TEST_ONLY",
          "TME_SHELL_TEST_VISIBLE",
        ],
        output_tail_bytes: 1024,
        sandbox_read_only: [scratch],
      },
    },
  });
  await h.startPool({ slots: 2 });
});
afterAll(async () => {
  await h.close();
  delete process.env.AWS_SECRET_ACCESS_KEY;
  delete process.env.DATABASE_URL_TEST_ONLY;
  delete process.env.TME_BOOTSTRAP_API_KEY_TEST;
  delete process.env.TME_SHELL_TEST_VISIBLE;
});

async function run(command: string, extra: Record<string, unknown> = {}) {
  const task = await h.create({
    name: `shell_${Math.random().toString(36).slice(2)}`,
    command,
    max_attempts: 1,
    ...extra,
  });
  const done = await h.waitForStatus(task.id, ["succeeded", "failed", "timed_out"]);
  const [run] = await h.runs(task.id);
  return { task: done, run: run! };
}

describe("the shell plugin", () => {
  it('runs without a shell: echo "; id" prints its argument literally', async () => {
    const { task, run: r } = await run(`echo "; id" '$(id)' \`id\``);
    expect(task.status).toBe("succeeded");
    expect(r.output_tail).toBe("; id $(id) `id`\n");
  });

  it("gives the command none of TME's secrets, DATABASE_* or AWS_* variables", async () => {
    const { run: r } = await run("env");
    const names = r
      .output_tail!.trim()
      .split("\n")
      .map((line) => line.split("=")[0]);
    expect(names).toContain("PATH");
    expect(names).not.toContain("AWS_SECRET_ACCESS_KEY");
    expect(names).not.toContain("DATABASE_URL_TEST_ONLY");
    expect(names).not.toContain("TME_SHELL_TEST_VISIBLE");
    expect(names).not.toContain("TME_BOOTSTRAP_API_KEY_TEST");
    expect(r.output_tail).not.toContain("do-not-leak");
    // PWD: bubblewrap sets it for the directory it starts the command in.
    expect(names.every((n) => ["PATH", "HOME", "PWD"].includes(n!))).toBe(true);
  });

  it("keeps a capped tail of the output and says how much it dropped", async () => {
    const script = path.join(scratch, "loud.sh");
    // 5000 lines "line N": well over the 1024-byte cap; the last line must survive.
    writeFileSync(script, "#!/bin/sh\ni=1\nwhile [ $i -le 5000 ]; do echo line $i; i=$((i+1)); done\n", {
      mode: 0o755,
    });
    const { task, run: r } = await run(script);
    expect(task.status).toBe("succeeded");
    expect(r.output_truncated).toBe(true);
    expect(Buffer.byteLength(r.output_tail!)).toBeLessThanOrEqual(1024);
    expect(r.output_tail).toMatch(/^\[output truncated: \d+ bytes dropped\]\n/);
    expect(r.output_tail!.endsWith("line 5000\n")).toBe(true);
    const total = Array.from({ length: 5000 }, (_, i) => `line ${i + 1}\n`).join("").length;
    const dropped = Number(/(\d+) bytes dropped/.exec(r.output_tail!)![1]);
    const kept = Buffer.byteLength(r.output_tail!.slice(r.output_tail!.indexOf("\n") + 1));
    expect(dropped + kept).toBe(total);
  });

  it("fails on a non-zero exit with the exit code and the tail in the error", async () => {
    const { task, run: r } = await run("sh -c 'echo something broke >&2; exit 7'");
    expect(task.status).toBe("failed");
    expect(task.error).toBe("exit code 7: something broke\n");
    expect(r).toMatchObject({ status: "failed", exit_code: 7, output_tail: "something broke\n" });
  });

  it("kills a setsid child (out of the command's process group) when the task times out", async () => {
    // Evidence from the host's process table (pids printed inside a sandbox are its own).
    const marker = `${300 + Math.floor(Math.random() * 1000)}.7`;
    const { task } = await run(`sh -c 'setsid sleep ${marker} & sleep ${marker}'`, { timeout_seconds: 1 });
    expect(task.status).toBe("timed_out");
    await h.waitFor(async () => hostProcessesWith(`sleep ${marker}`).length === 0, 10_000, "both to be gone");
  });

  it("fails without retrying a program that does not exist", async () => {
    const { task } = await run("/no/such/program", { max_attempts: 3 });
    expect(task.status).toBe("failed");
    expect(task.attempt).toBe(1);
    expect(task.error).toContain("could not start");
  });
});

describe("the shell plugin's allowlist and shell mode", () => {
  it("refuses a command outside shell.allowed_commands at create and at run, judging the normalised program path", async () => {
    const strict = await createEngineHarness({
      app: {
        shell: {
          allow_shell: false,
          allowed_commands: ["/bin/echo *"],
          env_allowlist: ["PATH"],
          output_tail_bytes: 1024,
        },
      },
    });
    try {
      // Refused at create time (422)...
      await expect(strict.create({ name: "b", command: "/bin/../usr/bin/id" })).rejects.toMatchObject({
        status: 422,
        details: [{ path: "command", message: expect.stringContaining("shell.allowed_commands") }],
      });
      // ...and at run time, for tasks accepted before the allowlist was tightened.
      const { shell: _, ...withoutShell } = strict.app.config.app;
      const acceptedEarlier = (input: { name: string; command: string; max_attempts?: number }) =>
        createTask(
          {
            tasks: strict.app.tasks,
            plugins: strict.app.plugins,
            config: withoutShell,
            now: () => new Date(),
          },
          "default",
          input,
        ).then((stored) => stored.task);
      await strict.startPool({ slots: 1 });
      const ok = await strict.create({ name: "a", command: "/bin/echo allowed" });
      const traversal = await acceptedEarlier({ name: "b", command: "/bin/../usr/bin/id", max_attempts: 3 });
      const other = await acceptedEarlier({ name: "c", command: "id" });
      expect((await strict.waitForStatus(ok.id, ["succeeded", "failed"])).status).toBe("succeeded");
      const refused = await strict.waitForStatus(traversal.id, ["succeeded", "failed"]);
      expect(refused).toMatchObject({ status: "failed", attempt: 1 });
      expect(refused.error).toContain("matches no pattern of shell.allowed_commands");
      expect((await strict.waitForStatus(other.id, ["succeeded", "failed"])).status).toBe("failed");
    } finally {
      await strict.close();
    }
  });

  it("runs through /bin/sh only when allow_shell is set", async () => {
    const shelled = await createEngineHarness({
      app: {
        shell: {
          allow_shell: true,
          allowed_commands: ["*"],
          env_allowlist: ["PATH"],
          output_tail_bytes: 1024,
        },
      },
    });
    try {
      await shelled.startPool({ slots: 1 });
      const task = await shelled.create({ name: "piped", command: "echo one two | wc -w" });
      await shelled.waitForStatus(task.id, ["succeeded"]);
      expect((await shelled.runs(task.id))[0]!.output_tail!.trim()).toBe("2");
    } finally {
      await shelled.close();
    }
  });
});

describe("allow_shell with an allowlist (finding 3)", () => {
  it('refuses "echo a; id" and "echo $(cat ...)" under ["echo *"] at create, with the rule, and runs what passes', async () => {
    const shelled = await createEngineHarness({
      app: {
        shell: {
          allow_shell: true,
          allowed_commands: ["echo *"],
          env_allowlist: ["PATH"],
          output_tail_bytes: 1024,
        },
      },
    });
    try {
      await shelled.startPool({ slots: 1 });
      for (const [command, why] of [
        ["echo a; id", '"id" matches no pattern of shell.allowed_commands'],
        ["echo $(cat /etc/hostname)", "command substitution ($(...) or backticks) is not allowed"],
        ["echo `id`", "command substitution"],
        ["echo a > /tmp/x", 'redirection "> /tmp/x" is not allowed'],
      ] as const) {
        await expect(shelled.create({ name: "hostile", command }), command).rejects.toMatchObject({
          status: 422,
          details: [{ path: "command", message: expect.stringContaining(why) }],
        });
      }
      const refused = await shelled.create({ name: "x", command: "echo a && id" }).catch((e) => e);
      expect(refused.details[0].message).toContain("allowed: each simple command must match a pattern");
      const ok = await shelled.create({ name: "ok", command: "echo a && echo b 2>&1" });
      await shelled.waitForStatus(ok.id, ["succeeded"]);
      expect((await shelled.runs(ok.id))[0]!.output_tail).toBe("a\nb\n");
    } finally {
      await shelled.close();
    }
  });
});

describe("the shell plugin with the shipped 64 KiB tail", () => {
  it("puts the end of a long output in a failed task's error, where the command says why", async () => {
    const loud = await createEngineHarness({ app: { shell: { sandbox_read_only: [scratch] } } });
    try {
      await loud.startPool({ slots: 1 });
      const script = path.join(scratch, "loud-fail.sh");
      // About 100 KiB of output: more than the 16 KiB an error keeps, more than the tail.
      writeFileSync(
        script,
        "#!/bin/sh\ni=1\nwhile [ $i -le 10000 ]; do echo line $i; i=$((i+1)); done\necho 'fatal: disk full' >&2\nexit 4\n",
        { mode: 0o755 },
      );
      const task = await loud.create({ name: "loud_fail", command: script, max_attempts: 1 });
      const done = await loud.waitForStatus(task.id, ["failed", "succeeded"]);
      expect(done.status).toBe("failed");
      expect(done.error!.startsWith("exit code 4: ...")).toBe(true);
      expect(done.error!.endsWith("line 10000\nfatal: disk full\n")).toBe(true);
      expect(done.error!.length).toBeLessThanOrEqual("exit code 4: ...".length + 4096);
      // The run keeps the whole tail.
      const [run] = await loud.runs(task.id);
      expect(Buffer.byteLength(run!.output_tail!)).toBeGreaterThan(60_000);
    } finally {
      await loud.close();
    }
  });
});
