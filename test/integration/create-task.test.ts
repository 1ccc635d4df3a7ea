import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTask } from "../../functions/core/tasks/create-task.js";
import { createTestApp, type TestApp } from "../helpers/test-app.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const deps = () => ({
  tasks: t.app.tasks,
  plugins: t.app.plugins,
  config: t.app.config.app,
  now: () => new Date(),
});

describe("createTask", () => {
  it("stores a queued task with its created event and queue signal in one go", async () => {
    const task = await createTask(deps(), "default", { name: "sleepy", params: { seconds: 2 } });
    expect(task).toMatchObject({
      status: "queued",
      handler: "sleep",
      params: { seconds: 2, fail: false },
      attempt: 0,
    });
    const events = await t.app.db.rows("SELECT type FROM task_events WHERE task_id = $1", [task.id]);
    expect(events).toEqual([{ type: "task.created" }]);
    const outbox = await t.app.db.rows<{ type: string }>(
      "SELECT type FROM outbox WHERE payload->>'task_id' = $1 OR payload->'data'->'task'->>'id' = $1 ORDER BY id",
      [task.id],
    );
    expect(outbox.map((o) => o.type)).toEqual(["task.created", "queue.dispatch"]);
  });

  it("refuses a name with neither a plugin mapping nor a command", async () => {
    await expect(createTask(deps(), "default", { name: "unmapped" })).rejects.toMatchObject({
      status: 422,
      details: [{ path: "command" }],
    });
  });

  it("refuses params that do not fit the plugin's schema with 422 naming the field", async () => {
    await expect(
      createTask(deps(), "default", { name: "sleep", params: { seconds: "ten" } }),
    ).rejects.toMatchObject({ status: 422, details: [{ path: "params.seconds" }] });
  });

  it("refuses a command the shell plugin could never run with 422 naming command", async () => {
    const strict = {
      ...deps(),
      config: {
        ...t.app.config.app,
        shell: { ...t.app.config.app.shell, allowed_commands: ["/opt/jobs/*"] },
      },
    };
    const cases: Array<[Parameters<typeof createTask>[0], string, RegExp]> = [
      [deps(), 'echo "unbalanced', /command cannot be parsed/],
      [deps(), "   ", /command is empty/],
      [strict, "/opt/jobs/../../bin/sh -c id", /matches no pattern of shell.allowed_commands/],
    ];
    for (const [d, command, message] of cases) {
      await expect(createTask(d, "default", { name: "cmd", command })).rejects.toMatchObject({
        status: 422,
        message: expect.stringMatching(message),
        details: [{ path: "command", message: expect.stringMatching(message) }],
      });
    }
    const allowed = await createTask(strict, "default", { name: "cmd", command: "/opt/jobs/run.sh --all" });
    expect(allowed).toMatchObject({ handler: "shell", command: "/opt/jobs/run.sh --all" });
    const rows = await t.app.db.rows("SELECT command FROM tasks WHERE name = 'cmd'");
    expect(rows).toEqual([{ command: "/opt/jobs/run.sh --all" }]);
  });

  it("applies the default timeout and refuses one above max_task_timeout", async () => {
    const task = await createTask(deps(), "default", { name: "noop" });
    expect(task.timeout_seconds).toBe(t.app.config.app.default_task_timeout);
    await expect(
      createTask(deps(), "default", { name: "noop", timeout_seconds: t.app.config.app.max_task_timeout + 1 }),
    ).rejects.toMatchObject({ status: 400, details: [{ path: "timeout_seconds" }] });
  });
});
