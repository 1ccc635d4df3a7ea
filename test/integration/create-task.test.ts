import { describe, expect, it, vi } from "vitest";
import { PostgresTaskStore } from "../../functions/adapters/postgres/task-repository.js";
import { createTask } from "../../functions/core/tasks/create-task.js";
import { withTestApp } from "../helpers/test-app.js";

const t = withTestApp();

async function outboxTypes(taskId: string): Promise<string[]> {
  const rows = await t.app.db.rows<{ type: string }>(
    "SELECT type FROM outbox WHERE payload->>'task_id' = $1 OR payload->'data'->'task'->>'id' = $1 ORDER BY id",
    [taskId],
  );
  return rows.map((o) => o.type);
}

const deps = () => ({
  tasks: t.app.tasks,
  plugins: t.app.plugins,
  config: t.app.config.app,
  now: () => new Date(),
});

describe("createTask", () => {
  it("stores a queued task with its created event; locally its queue signal is a NOTIFY, not a row", async () => {
    const { task } = await createTask(deps(), "default", { name: "sleepy", params: { seconds: 2 } });
    expect(task).toMatchObject({
      status: "queued",
      handler: "sleep",
      params: { seconds: 2, fail: false },
      attempt: 0,
    });
    const events = await t.app.db.rows("SELECT type FROM task_events WHERE task_id = $1", [task.id]);
    expect(events).toEqual([{ type: "task.created" }]);
    expect(await outboxTypes(task.id)).toEqual(["task.created"]);
  });

  it("on the cloud's route also writes the queue signal the relay sends to SQS, in the same commit", async () => {
    const cloud = new PostgresTaskStore(t.app.db, undefined, { queueSignals: "outbox" });
    const { task } = await createTask({ ...deps(), tasks: cloud }, "default", { name: "noop" });
    expect(await outboxTypes(task.id)).toEqual(["task.created", "queue.dispatch"]);
  });

  it("shares one statement between concurrent creates, each committed with its own event and audit row", async () => {
    const statements = vi.spyOn(t.app.db, "query");
    const audit = (taskId: string) => ({
      actor: null,
      actor_name: "test",
      namespace: "default",
      action: "task.create",
      target: taskId,
      request_id: `req-${taskId}`,
      source_ip: null,
      outcome: "ok" as const,
      status: 201,
    });
    const tasks = await Promise.all(
      Array.from({ length: 20 }, () => createTask({ ...deps(), audit }, "default", { name: "noop" })),
    );
    const ids = tasks.map(({ task }) => task.id);
    const counts = await t.app.db.rows<{ tasks: number; events: number; audits: number }>(
      `SELECT (SELECT count(*) FROM tasks WHERE id = ANY($1)) AS tasks,
         (SELECT count(*) FROM task_events WHERE task_id = ANY($1) AND type = 'task.created') AS events,
         (SELECT count(*) FROM audit_log WHERE target = ANY($1) AND action = 'task.create') AS audits`,
      [ids],
    );
    expect(counts).toEqual([{ tasks: 20, events: 20, audits: 20 }]);
    // Fewer statements than tasks: the group commit took several creates at once.
    const creates = statements.mock.calls.filter(([sql]) => sql.includes("INSERT INTO tasks")).length;
    statements.mockRestore();
    expect(creates).toBeGreaterThan(0);
    expect(creates).toBeLessThan(20);
  });

  it("fails only the create whose row the database refuses, not the others of its batch", async () => {
    const results = await Promise.allSettled(
      // max_attempts 0 passes createTask (the API's schema refuses it) and breaks a CHECK.
      [3, 0, 3].map((max_attempts) => createTask(deps(), "default", { name: "noop", max_attempts })),
    );
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const stored = await t.app.db.rows("SELECT id FROM tasks WHERE id = ANY($1)", [
      results.flatMap((r) => (r.status === "fulfilled" ? [r.value.task.id] : [])),
    ]);
    expect(stored).toHaveLength(2);
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
    const { task: allowed } = await createTask(strict, "default", {
      name: "cmd",
      command: "/opt/jobs/run.sh --all",
    });
    expect(allowed).toMatchObject({ handler: "shell", command: "/opt/jobs/run.sh --all" });
    const rows = await t.app.db.rows("SELECT command FROM tasks WHERE name = 'cmd'");
    expect(rows).toEqual([{ command: "/opt/jobs/run.sh --all" }]);
  });

  it("applies the default timeout and refuses one above max_task_timeout", async () => {
    const { task } = await createTask(deps(), "default", { name: "noop" });
    expect(task.timeout_seconds).toBe(t.app.config.app.default_task_timeout);
    await expect(
      createTask(deps(), "default", { name: "noop", timeout_seconds: t.app.config.app.max_task_timeout + 1 }),
    ).rejects.toMatchObject({ status: 400, details: [{ path: "timeout_seconds" }] });
  });
});
