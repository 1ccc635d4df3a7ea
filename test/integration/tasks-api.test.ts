import { randomBytes } from "node:crypto";
import pg from "pg";
import { describe, expect, it, vi } from "vitest";
import { TASK_CONTROL_CHANNEL } from "../../functions/adapters/postgres/event-writer.js";
import { TaskEventSchema, TaskRunSchema, TaskViewSchema } from "../../functions/http/routes/task-schemas.js";
import { insertRun, insertTask } from "../helpers/tasks.js";
import { withTestApp } from "../helpers/test-app.js";

// The cloud's queue signals are outbox rows, which these tests can see (locally a NOTIFY;
// test/integration/create-task.test.ts checks that no row is written there).
const t = withTestApp({ env: { TME_RUNTIME: "cloud" } });

/** A namespace of the test's own, so tests of lists and counts do not see each other's tasks. */
function freshNamespace(): string {
  return `ns_${randomBytes(4).toString("hex")}`;
}

async function create(body: Record<string, unknown>, namespace = "default") {
  const res = await t.request("POST", `/task/create?namespace=${namespace}`, { body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

const eventTypes = async (taskId: string) =>
  (
    await t.app.db.rows<{ type: string }>("SELECT type FROM task_events WHERE task_id = $1 ORDER BY id", [
      taskId,
    ])
  ).map((r) => r.type);

const outboxTypes = async (taskId: string) =>
  (
    await t.app.db.rows<{ type: string }>(
      `SELECT type FROM outbox WHERE payload->>'task_id' = $1 OR payload->'data'->'task'->>'id' = $1 ORDER BY id`,
      [taskId],
    )
  ).map((r) => r.type);

describe("POST /task/create", () => {
  it("creates a queued task and answers 201 with the whole task object", async () => {
    const res = await t.request("POST", "/task/create", {
      body: {
        name: "noop",
        description: "nightly",
        params: { echo: { a: [1, "b"] } },
        priority: 7,
        timeout_seconds: 600,
        max_attempts: 2,
        labels: { team: "ops" },
      },
    });
    expect(res.status).toBe(201);
    const task = TaskViewSchema.parse(res.body);
    expect(task).toMatchObject({
      task_id: task.id,
      name: "noop",
      description: "nightly",
      handler: "noop",
      params: { echo: { a: [1, "b"] } },
      status: "queued",
      priority: 7,
      attempt: 0,
      max_attempts: 2,
      timeout_seconds: 600,
      labels: { team: "ops" },
      progress: null,
      result: null,
      error: null,
      started_at: null,
      finished_at: null,
    });
    expect(task.waiting_reason).toMatch(/^(next in queue|queued behind)/);
    expect(res.headers.get("location")).toBe(`/task/${task.id}`);
    const got = await t.request("GET", `/task/${task.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
    expect(await eventTypes(task.id)).toEqual(["task.created"]);
  });

  it("keeps a future run_at and says when the task is due", async () => {
    const task = await create({ name: "noop", run_at: "2099-01-01T00:00:00+02:00" });
    expect(task.run_at).toBe("2098-12-31T22:00:00.000Z");
    expect(task.waiting_reason).toBe("scheduled for 2098-12-31T22:00:00.000Z");
  });

  it.each([
    [{}, "name"],
    [{ name: "" }, "name"],
    [{ name: "x".repeat(201) }, "name"],
    [{ name: "noop", priority: 10 }, "priority"],
    [{ name: "noop", priority: 1.5 }, "priority"],
    [{ name: "noop", priority: "5" }, "priority"],
    [{ name: "noop", timeout_seconds: 0 }, "timeout_seconds"],
    [{ name: "noop", max_attempts: 101 }, "max_attempts"],
    [{ name: "noop", run_at: "tomorrow" }, "run_at"],
    [{ name: "noop", run_at: "2026-02-30T00:00:00Z" }, "run_at"],
    [{ name: "noop", labels: { "bad key": "v" } }, "labels.bad key"],
    [{ name: "noop", labels: { k: 1 } }, "labels.k"],
    [{ name: "noop", params: [1, 2] }, "params"],
    [{ name: "noop", command: "x".repeat(8193) }, "command"],
    [{ name: "noop", nmae: "typo" }, "nmae"],
    [{ name: "noop", description: "a\u0000b" }, "description"],
  ])("refuses %j with 400 naming %s", async (body, path) => {
    const res = await t.request("POST", "/task/create", { body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_error");
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
  });

  it("refuses too many labels with 400", async () => {
    const labels = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, "v"]));
    const res = await t.request("POST", "/task/create", { body: { name: "noop", labels } });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe("labels");
  });

  it("answers 422 for a name with no plugin and no command, and for params the plugin refuses", async () => {
    const unmapped = await t.request("POST", "/task/create", { body: { name: "no_such_type" } });
    expect(unmapped.status).toBe(422);
    expect(unmapped.body.error.details[0].path).toBe("command");
    const badParams = await t.request("POST", "/task/create", {
      body: { name: "sleep", params: { seconds: "x" } },
    });
    expect(badParams.status).toBe(422);
    expect(badParams.body.error.details[0].path).toBe("params.seconds");
  });

  it("answers 422 naming command for a command that cannot be parsed", async () => {
    const res = await t.request("POST", "/task/create", { body: { name: "quoted", command: "echo 'open" } });
    expect(res.status).toBe(422);
    expect(res.body.error.details).toEqual([
      { path: "command", message: "command cannot be parsed: Got EOF while in a quoted string" },
    ]);
  });

  it("answers 400 for a timeout above max_task_timeout", async () => {
    const res = await t.request("POST", "/task/create", {
      body: { name: "noop", timeout_seconds: t.app.config.app.max_task_timeout + 1 },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe("timeout_seconds");
  });
});

describe("auth and namespaces", () => {
  it("answers 401 without a key and with a bad key, 403 for a key without the scope", async () => {
    const noKey = await t.request("GET", "/tasks", { key: null });
    expect(noKey.status).toBe(401);
    expect(noKey.body.error.code).toBe("unauthenticated");
    expect((await t.request("GET", "/tasks", { key: "tme_not_a_key" })).status).toBe(401);
    const reader = await t.keyWith(["tasks:read"]);
    expect((await t.request("GET", "/tasks", { key: reader })).status).toBe(200);
    const denied = await t.request("POST", "/task/create", { key: reader, body: { name: "noop" } });
    expect(denied.status).toBe(403);
    expect(denied.body.error.details).toEqual([{ path: "scope", message: "requires tasks:write" }]);
    const writer = await t.keyWith(["tasks:write"]);
    expect((await t.request("GET", "/tasks", { key: writer })).status).toBe(403);
    expect((await t.request("POST", "/task/create", { key: writer, body: { name: "noop" } })).status).toBe(
      201,
    );
  });

  it("hides another namespace's task (404) and lets an admin reach it with ?namespace=", async () => {
    const ns = freshNamespace();
    const theirs = await t.keyWith(["tasks:read", "tasks:write"], ns);
    const created = await t.request("POST", "/task/create", { key: theirs, body: { name: "noop" } });
    expect(created.body.namespace).toBe(ns);
    const mine = await t.keyWith(["tasks:read", "tasks:write"]);
    const id = created.body.id;
    for (const [method, path] of [
      ["GET", `/task/${id}`],
      ["GET", `/task/${id}/runs`],
      ["GET", `/task/${id}/events`],
      ["POST", `/task/${id}/cancel`],
      ["PATCH", `/task/${id}`],
    ] as const) {
      const res = await t.request(method, path, {
        key: mine,
        ...(method === "PATCH" ? { body: { priority: 1 } } : {}),
      });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.error.code).toBe("not_found");
    }
    expect(
      (await t.request("GET", "/tasks", { key: mine })).body.map((x: { id: string }) => x.id),
    ).not.toContain(id);
    expect((await t.request("GET", `/task/${id}?namespace=${ns}`, { key: mine })).status).toBe(403);
    expect((await t.request("GET", `/task/${id}`)).status).toBe(404);
    const asAdmin = await t.request("GET", `/task/${id}?namespace=${ns}`);
    expect(asAdmin.status).toBe(200);
    expect(asAdmin.body.id).toBe(id);
  });

  it("answers 404 for an unknown task id", async () => {
    const res = await t.request("GET", "/task/tsk_unknown");
    expect(res.status).toBe(404);
    expect(res.body).toEqual({
      error: { code: "not_found", message: "task tsk_unknown not found", details: [] },
    });
  });
});

describe("control actions", () => {
  it("pause then resume a queued task, each with its event and the resume with a queue signal", async () => {
    const task = await create({ name: "noop" });
    const paused = await t.request("POST", `/task/${task.id}/pause`);
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ status: "paused", waiting_reason: "paused" });
    const resumed = await t.request("POST", `/task/${task.id}/resume`);
    expect(resumed.status).toBe(200);
    expect(resumed.body.status).toBe("queued");
    expect(await eventTypes(task.id)).toEqual(["task.created", "task.paused", "task.resumed"]);
    expect(await outboxTypes(task.id)).toEqual([
      "task.created",
      "queue.dispatch",
      "task.paused",
      "task.resumed",
      "queue.dispatch",
    ]);
    const events = await t.request("GET", `/task/${task.id}/events`);
    expect(events.body.map((e: { type: string }) => e.type)).toEqual([
      "task.created",
      "task.paused",
      "task.resumed",
    ]);
    for (const e of events.body) TaskEventSchema.parse(e);
    expect(events.body[1].data.task.status).toBe("paused");
  });

  it("answers 409 naming the current status for illegal transitions, and changes nothing", async () => {
    const queued = await create({ name: "noop" });
    const resume = await t.request("POST", `/task/${queued.id}/resume`);
    expect(resume.status).toBe(409);
    expect(resume.body.error).toMatchObject({
      code: "illegal_transition",
      details: [{ path: "status", message: expect.stringContaining("is queued") }],
    });
    expect(resume.body.error.message).toContain("it is queued");
    expect((await t.request("POST", `/task/${queued.id}/restart`)).status).toBe(409);
    const succeeded = await insertTask(t.app.db, { status: "succeeded" });
    for (const action of ["cancel", "pause", "resume"]) {
      const res = await t.request("POST", `/task/${succeeded}/${action}`);
      expect(res.status).toBe(409);
      expect(res.body.error.message).toContain("succeeded");
    }
    expect(await eventTypes(succeeded)).toEqual([]);
  });

  it("cancels a queued, paused or retrying task with finished_at and its event", async () => {
    for (const status of ["queued", "paused", "retrying"] as const) {
      const id = await insertTask(t.app.db, { status });
      const res = await t.request("POST", `/task/${id}/cancel`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: "cancelled", waiting_reason: null });
      expect(res.body.finished_at).not.toBeNull();
      expect(await eventTypes(id)).toEqual(["task.cancelled"]);
    }
  });

  it("cancels a running task: keeps its lease for fencing and NOTIFYs the engine in the same transaction", async () => {
    const id = await insertTask(t.app.db, { status: "running" });
    const listener = new pg.Client({ connectionString: t.database.url });
    await listener.connect();
    try {
      const heard: string[] = [];
      listener.on("notification", (n) => {
        if (n.channel === TASK_CONTROL_CHANNEL && n.payload) heard.push(n.payload);
      });
      await listener.query(`LISTEN ${TASK_CONTROL_CHANNEL}`);
      const res = await t.request("POST", `/task/${id}/cancel`);
      expect(res.status).toBe(200);
      expect(res.body.status).toBe("cancelled");
      const deadline = Date.now() + 2000;
      while (!heard.includes(id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(heard).toContain(id);
    } finally {
      await listener.end();
    }
    const [row] = await t.app.db.rows(
      "SELECT status, lease_owner, attempt, finished_at FROM tasks WHERE id = $1",
      [id],
    );
    expect(row).toMatchObject({ status: "cancelled", lease_owner: "worker-test", attempt: 1 });
    expect(row!.finished_at).toBeInstanceOf(Date);
    // The worker's fenced completion (status = 'running' AND lease_owner = me) now finds nothing.
    const late = await t.app.db.query(
      "UPDATE tasks SET status = 'succeeded' WHERE id = $1 AND status = 'running' AND lease_owner = 'worker-test'",
      [id],
    );
    expect(late.rowCount).toBe(0);
  });

  it("restarts a failed task as a new series, keeping its run history", async () => {
    const id = await insertTask(t.app.db, { status: "failed", attempt: 3, result: { partial: true } });
    await insertRun(t.app.db, id, { attempt: 1, status: "failed", exit_code: 1, output_tail: "first" });
    await insertRun(t.app.db, id, { attempt: 2, status: "failed", exit_code: 1, output_tail: "second" });
    const before = Date.now();
    const res = await t.request("POST", `/task/${id}/restart`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: "queued",
      attempt: 0,
      result: null,
      error: null,
      progress: null,
      started_at: null,
      finished_at: null,
    });
    expect(Date.parse(res.body.run_at)).toBeGreaterThanOrEqual(before - 1000);
    const [row] = await t.app.db.rows("SELECT series FROM tasks WHERE id = $1", [id]);
    expect(row).toEqual({ series: 1 });
    expect(await eventTypes(id)).toEqual(["task.restarted"]);
    expect(await outboxTypes(id)).toEqual(["task.restarted", "queue.dispatch"]);
    const runs = await t.request("GET", `/task/${id}/runs`);
    expect(runs.status).toBe(200);
    expect(
      runs.body.map((r: { attempt: number; output_tail: string }) => [r.attempt, r.output_tail]),
    ).toEqual([
      [1, "first"],
      [2, "second"],
    ]);
    for (const run of runs.body) TaskRunSchema.parse(run);
    expect(runs.body[0]).toMatchObject({ series: 0, status: "failed", exit_code: 1, error: "exit code 1" });
  });

  it("restarts each finished status and refuses the waiting ones", async () => {
    for (const status of ["failed", "timed_out", "cancelled", "succeeded"] as const) {
      const id = await insertTask(t.app.db, { status });
      expect((await t.request("POST", `/task/${id}/restart`)).status).toBe(200);
    }
    for (const status of ["queued", "paused", "retrying", "running"] as const) {
      const id = await insertTask(t.app.db, { status });
      const res = await t.request("POST", `/task/${id}/restart`);
      expect(res.status).toBe(409);
      expect(res.body.error.details[0].message).toContain(`is ${status}`);
    }
  });

  it("refuses a body with fields on an action (400) and a non-JSON body (415)", async () => {
    const task = await create({ name: "noop" });
    expect((await t.request("POST", `/task/${task.id}/pause`, { body: { force: true } })).status).toBe(400);
    const text = await t.request("POST", `/task/${task.id}/pause`, {
      rawBody: "please",
      headers: { "content-type": "text/plain" },
    });
    expect(text.status).toBe(415);
    expect((await t.request("POST", `/task/${task.id}/pause`, { body: {} })).status).toBe(200);
  });

  it("writes each successful control call to the audit log", async () => {
    const task = await create({ name: "noop" });
    await t.request("POST", `/task/${task.id}/cancel`);
    const rows = await t.app.db.rows("SELECT action, target FROM audit_log WHERE target = $1 ORDER BY id", [
      task.id,
    ]);
    expect(rows).toEqual([
      { action: "task.create", target: task.id },
      { action: "task.cancel", target: task.id },
    ]);
  });
});

describe("PATCH /task/{task_id}", () => {
  it("updates the editable fields and returns the task", async () => {
    const task = await create({ name: "noop", labels: { a: "1" } });
    const res = await t.request("PATCH", `/task/${task.id}`, {
      body: {
        description: "changed",
        priority: 9,
        labels: { b: "2" },
        timeout_seconds: 30,
        max_attempts: 5,
        run_at: "2099-06-01T00:00:00Z",
      },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      description: "changed",
      priority: 9,
      labels: { b: "2" },
      timeout_seconds: 30,
      max_attempts: 5,
      run_at: "2099-06-01T00:00:00.000Z",
      status: "queued",
      waiting_reason: "scheduled for 2099-06-01T00:00:00.000Z",
    });
    expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(task.updated_at));
    expect((await t.request("GET", `/task/${task.id}`)).body.priority).toBe(9);
    // Edits alone are no lifecycle event; the queued task's new priority reaches the queue.
    expect(await outboxTypes(task.id)).toEqual(["task.created", "queue.dispatch", "queue.dispatch"]);
  });

  it("takes status as an action: paused, queued (resume), cancelled", async () => {
    const task = await create({ name: "noop" });
    const paused = await t.request("PATCH", `/task/${task.id}`, { body: { status: "paused" } });
    expect(paused.body.status).toBe("paused");
    const again = await t.request("PATCH", `/task/${task.id}`, { body: { status: "paused" } });
    expect(again.status).toBe(409);
    expect(again.body.error.details[0]).toEqual({
      path: "status",
      message: "is paused; cannot become paused",
    });
    const resumed = await t.request("PATCH", `/task/${task.id}`, { body: { status: "queued", priority: 2 } });
    expect(resumed.body).toMatchObject({ status: "queued", priority: 2 });
    const cancelled = await t.request("PATCH", `/task/${task.id}`, { body: { status: "cancelled" } });
    expect(cancelled.body.status).toBe("cancelled");
    expect(await eventTypes(task.id)).toEqual([
      "task.created",
      "task.paused",
      "task.resumed",
      "task.cancelled",
    ]);
  });

  it("refuses run_at on a running task with 409 but allows the other fields", async () => {
    const id = await insertTask(t.app.db, { status: "running" });
    const res = await t.request("PATCH", `/task/${id}`, { body: { run_at: "2099-01-01T00:00:00Z" } });
    expect(res.status).toBe(409);
    expect(res.body.error.details[0].path).toBe("run_at");
    expect(res.body.error.message).toContain("running");
    const ok = await t.request("PATCH", `/task/${id}`, { body: { description: "still running" } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: "running", description: "still running", waiting_reason: null });
  });

  it.each([
    [{}, "(body)"],
    [{ status: "running" }, "status"],
    [{ name: "renamed" }, "name"],
    [{ priority: -1 }, "priority"],
  ])("refuses %j with 400 naming %s", async (body, path) => {
    const task = await create({ name: "noop" });
    const res = await t.request("PATCH", `/task/${task.id}`, { body });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
  });

  it("refuses max_attempts below the attempts made with 422", async () => {
    const id = await insertTask(t.app.db, { status: "retrying", attempt: 2 });
    const res = await t.request("PATCH", `/task/${id}`, { body: { max_attempts: 1 } });
    expect(res.status).toBe(422);
    expect(res.body.error.details[0].path).toBe("max_attempts");
  });

  it("refuses max_attempts equal to the attempts made while the task waits (it could never run again)", async () => {
    const id = await insertTask(t.app.db, { status: "paused", attempt: 2 });
    const res = await t.request("PATCH", `/task/${id}`, { body: { max_attempts: 2 } });
    expect(res.status).toBe(422);
    expect(res.body.error.details[0]).toMatchObject({
      path: "max_attempts",
      message: expect.stringContaining(">= 3"),
    });
    expect((await t.request("GET", `/task/${id}`)).body.max_attempts).not.toBe(2);
    const ok = await t.request("PATCH", `/task/${id}`, { body: { max_attempts: 3 } });
    expect(ok.body).toMatchObject({ status: "paused", max_attempts: 3 });
  });
});

describe("GET /tasks", () => {
  it("filters by status, name, label, schedule_id and creation time", async () => {
    const ns = freshNamespace();
    const base = Date.now() - 60_000;
    const at = (s: number) => new Date(base + s * 1000);
    const a = await insertTask(t.app.db, {
      namespace: ns,
      name: "alpha",
      labels: { team: "ops", env: "prod" },
      created_at: at(1),
    });
    const b = await insertTask(t.app.db, {
      namespace: ns,
      name: "alpha",
      status: "failed",
      labels: { team: "ops" },
      created_at: at(2),
    });
    const c = await insertTask(t.app.db, {
      namespace: ns,
      name: "beta",
      status: "paused",
      schedule_id: "sch_1",
      created_at: at(3),
    });
    const d = await insertTask(t.app.db, {
      namespace: ns,
      name: "beta",
      status: "succeeded",
      labels: { env: "a,b" },
      created_at: at(4),
    });
    const ids = async (query: string) => {
      const res = await t.request("GET", `/tasks?namespace=${ns}&${query}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.map((x: { id: string }) => x.id);
    };
    expect(await ids("")).toEqual([d, c, b, a]);
    expect(await ids("status=failed,paused")).toEqual([c, b]);
    expect(await ids("name=alpha")).toEqual([b, a]);
    expect(await ids("label=team:ops")).toEqual([b, a]);
    expect(await ids("label=team:ops&label=env:prod")).toEqual([a]);
    expect(await ids(`label=${encodeURIComponent("env:a,b")}`)).toEqual([d]);
    expect(await ids("schedule_id=sch_1")).toEqual([c]);
    expect(await ids(`created_after=${at(2).toISOString()}`)).toEqual([d, c]);
    expect(await ids(`created_before=${at(2).toISOString()}`)).toEqual([a]);
    expect(await ids("name=alpha&status=queued")).toEqual([a]);
  });

  it("filters by label through tasks_labels_idx, which holds only labelled tasks", async () => {
    const rows = await t.app.db.rows<{ indexdef: string }>(
      "SELECT indexdef FROM pg_indexes WHERE indexname = 'tasks_labels_idx'",
    );
    expect(rows[0]?.indexdef).toContain("WHERE (labels <> '{}'::jsonb)");
    const sent = vi.spyOn(t.app.db, "query");
    try {
      expect((await t.request("GET", "/tasks?label=team:ops")).status).toBe(200);
      const [text] = sent.mock.calls.find(([sql]) => sql.includes("labels @>"))!;
      expect(text).toMatch(/labels @> \$\d+::jsonb AND labels <> '\{\}'::jsonb/);
      const condition = "labels @> $1::jsonb AND labels <> '{}'::jsonb";
      // That condition with sequential scans priced out: the index's predicate must follow
      // from it, or the planner could not use the index at all.
      const plan = await t.app.db.transaction(async (tx) => {
        await tx.query("SET LOCAL enable_seqscan = off");
        const { rows: lines } = await tx.query<{ "QUERY PLAN": string }>(
          `EXPLAIN SELECT id FROM tasks WHERE ${condition}`,
          [JSON.stringify({ team: "ops" })],
        );
        return lines.map((r) => r["QUERY PLAN"]).join("\n");
      });
      expect(plan).toContain("tasks_labels_idx");
    } finally {
      sent.mockRestore();
    }
  });

  it.each([
    ["status=done", "query.status"],
    ["label=novalue", "query.label"],
    ["limit=0", "query.limit"],
    ["limit=501", "query.limit"],
    ["limit=ten", "query.limit"],
    ["created_after=yesterday", "query.created_after"],
    ["cursor=garbage", "query.cursor"],
    ["created_after=2026-13-01T00:00:00Z", "query.created_after"],
    ["sort=name", "query.sort"],
  ])("refuses ?%s with 400 naming %s, once", async (query, path) => {
    const res = await t.request("GET", `/tasks?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toEqual([path]);
  });

  it("pages newest first with X-Next-Cursor, with no duplicates or gaps while tasks are being created", async () => {
    const ns = freshNamespace();
    const existing: string[] = [];
    // Same-millisecond creation times included: the cursor keeps microseconds and the id.
    const sameInstant = new Date(Date.now() - 10_000);
    for (let i = 0; i < 45; i++) {
      existing.push(
        await insertTask(t.app.db, { namespace: ns, created_at: i < 10 ? sameInstant : undefined }),
      );
    }
    let inserting = true;
    const inserter = (async () => {
      while (inserting) {
        await create({ name: "noop" }, ns);
      }
    })();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await t.request(
        "GET",
        `/tasks?namespace=${ns}&limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.length).toBeLessThanOrEqual(7);
      seen.push(...res.body.map((x: { id: string }) => x.id));
      cursor = res.headers.get("x-next-cursor");
      pages++;
    } while (cursor && pages < 100);
    inserting = false;
    await inserter;
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of existing) expect(seen).toContain(id);
    const order = await t.app.db.rows<{ id: string }>(
      `SELECT id FROM tasks WHERE namespace = $1 AND id = ANY($2) ORDER BY created_at DESC, id DESC`,
      [ns, seen],
    );
    expect(seen).toEqual(order.map((r) => r.id));
  });

  it("defaults to 50 per page and answers no cursor on the last page", async () => {
    const ns = freshNamespace();
    for (let i = 0; i < 51; i++) await insertTask(t.app.db, { namespace: ns });
    const first = await t.request("GET", `/tasks?namespace=${ns}`);
    expect(first.body).toHaveLength(50);
    const cursor = first.headers.get("x-next-cursor");
    expect(cursor).toBeTruthy();
    const last = await t.request("GET", `/tasks?namespace=${ns}&cursor=${cursor}`);
    expect(last.body).toHaveLength(1);
    expect(last.headers.get("x-next-cursor")).toBeNull();
  });
});

describe("runs and events pages", () => {
  it("pages a task's runs and events with cursors", async () => {
    const id = await insertTask(t.app.db, { status: "failed" });
    for (let attempt = 1; attempt <= 3; attempt++)
      await insertRun(t.app.db, id, { attempt, status: "failed" });
    const first = await t.request("GET", `/task/${id}/runs?limit=2`);
    expect(first.body.map((r: { attempt: number }) => r.attempt)).toEqual([1, 2]);
    const next = await t.request(
      "GET",
      `/task/${id}/runs?limit=2&cursor=${first.headers.get("x-next-cursor")}`,
    );
    expect(next.body.map((r: { attempt: number }) => r.attempt)).toEqual([3]);
    expect(next.headers.get("x-next-cursor")).toBeNull();

    await t.request("POST", `/task/${id}/restart`);
    await t.request("POST", `/task/${id}/pause`);
    await t.request("POST", `/task/${id}/resume`);
    const e1 = await t.request("GET", `/task/${id}/events?limit=2`);
    const e2 = await t.request("GET", `/task/${id}/events?limit=2&cursor=${e1.headers.get("x-next-cursor")}`);
    expect([...e1.body, ...e2.body].map((e: { type: string }) => e.type)).toEqual([
      "task.restarted",
      "task.paused",
      "task.resumed",
    ]);
  });
});

describe("POST /tasks/actions", () => {
  it("restarts exactly the 100 failed tasks a filter selects, skipping the rest it selects", async () => {
    const ns = freshNamespace();
    const failed: string[] = [];
    for (let i = 0; i < 100; i++)
      failed.push(await insertTask(t.app.db, { namespace: ns, name: "batch", status: "failed" }));
    const others = [
      await insertTask(t.app.db, { namespace: ns, name: "batch", status: "queued" }),
      await insertTask(t.app.db, { namespace: ns, name: "batch", status: "running" }),
      await insertTask(t.app.db, { namespace: ns, name: "batch", status: "paused" }),
    ];
    const unrelated = await insertTask(t.app.db, { namespace: ns, name: "other", status: "failed" });
    const elsewhere = await insertTask(t.app.db, { name: "batch", status: "failed" });

    const res = await t.request("POST", `/tasks/actions?namespace=${ns}`, {
      body: { action: "restart", filter: { name: "batch" } },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ changed: 100, skipped: 3, more: false });

    const rows = await t.app.db.rows<{ id: string; status: string; series: number }>(
      "SELECT id, status, series FROM tasks WHERE id = ANY($1)",
      [[...failed, ...others, unrelated, elsewhere]],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const id of failed) expect(byId.get(id)).toMatchObject({ status: "queued", series: 1 });
    for (const id of [...others, unrelated, elsewhere]) expect(byId.get(id)!.series).toBe(0);
    expect(byId.get(unrelated)!.status).toBe("failed");
    expect(byId.get(elsewhere)!.status).toBe("failed");
    const [counts] = await t.app.db.rows(
      `SELECT count(*) FILTER (WHERE type = 'task.restarted') AS events,
         (SELECT count(*) FROM outbox WHERE type = 'queue.dispatch' AND payload->>'task_id' = ANY($1)) AS signals
       FROM task_events WHERE task_id = ANY($1)`,
      [failed],
    );
    expect(counts).toEqual({ events: 100, signals: 100 });

    const again = await t.request("POST", `/tasks/actions?namespace=${ns}`, {
      body: { action: "restart", filter: { name: "batch", status: ["failed"] } },
    });
    expect(again.body).toEqual({ changed: 0, skipped: 0, more: false });
  });

  it("counts as skipped the selected tasks whose status does not allow the action", async () => {
    const ns = freshNamespace();
    await insertTask(t.app.db, { namespace: ns, status: "queued", labels: { run: "x" } });
    await insertTask(t.app.db, { namespace: ns, status: "succeeded", labels: { run: "x" } });
    await insertTask(t.app.db, { namespace: ns, status: "retrying", labels: { run: "x" } });
    const res = await t.request("POST", `/tasks/actions?namespace=${ns}`, {
      body: { action: "pause", filter: { status: "queued,succeeded,retrying", label: "run:x" } },
    });
    expect(res.body).toEqual({ changed: 2, skipped: 1, more: false });
  });

  it.each([
    [{ action: "explode", filter: { name: "x" } }, "action"],
    [{ action: "cancel" }, "filter"],
    [{ action: "cancel", filter: {} }, "filter"],
    [{ action: "cancel", filter: { status: ["nope"] } }, "filter.status"],
    [{ action: "cancel", filter: { nmae: "x" } }, "filter.nmae"],
  ])("refuses %j with 400 naming %s", async (body, path) => {
    const res = await t.request("POST", "/tasks/actions", { body });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path).join(" ")).toContain(path);
  });
});

describe("task types", () => {
  it("lists names with counts, the concurrency limit and the pause state", async () => {
    const ns = freshNamespace();
    await insertTask(t.app.db, { namespace: ns, name: "noop_a", status: "failed" });
    await insertTask(t.app.db, { namespace: ns, name: "noop_a", status: "failed" });
    await insertTask(t.app.db, { namespace: ns, name: "sleep_b", status: "running" });
    await t.request("POST", `/task-types/held_c/pause?namespace=${ns}`);
    const res = await t.request("GET", `/task-types?namespace=${ns}`);
    expect(res.status).toBe(200);
    expect(res.body.map((x: { name: string }) => x.name)).toEqual(["held_c", "noop_a", "sleep_b"]);
    expect(res.body[1]).toEqual({
      name: "noop_a",
      counts: {
        queued: 0,
        paused: 0,
        running: 0,
        retrying: 0,
        succeeded: 0,
        failed: 2,
        timed_out: 0,
        cancelled: 0,
      },
      concurrency: null,
      paused: false,
      paused_at: null,
    });
    expect(res.body[0]).toMatchObject({ name: "held_c", paused: true });
    const paged = await t.request("GET", `/task-types?namespace=${ns}&limit=2`);
    expect(paged.body).toHaveLength(2);
    const rest = await t.request(
      "GET",
      `/task-types?namespace=${ns}&limit=2&cursor=${paged.headers.get("x-next-cursor")}`,
    );
    expect(rest.body.map((x: { name: string }) => x.name)).toEqual(["sleep_b"]);
  });

  it("holds queued tasks of a paused type, including new ones, and releases them on resume", async () => {
    const ns = freshNamespace();
    const before = await create({ name: "noop_held" }, ns);
    const paused = await t.request("POST", `/task-types/noop_held/pause?namespace=${ns}`);
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ name: "noop_held", paused: true, counts: { queued: 1 } });
    expect((await t.request("POST", `/task-types/noop_held/pause?namespace=${ns}`)).status).toBe(200);
    const during = await create({ name: "noop_held" }, ns);
    expect(during).toMatchObject({ status: "queued", waiting_reason: "task type paused" });
    expect((await t.request("GET", `/task/${before.id}?namespace=${ns}`)).body).toMatchObject({
      status: "queued",
      waiting_reason: "task type paused",
    });
    // Another namespace's task of the same name is not held.
    expect((await create({ name: "noop_held" })).waiting_reason).not.toBe("task type paused");

    const signalsBefore = (await outboxTypes(before.id)).length;
    const resumed = await t.request("POST", `/task-types/noop_held/resume?namespace=${ns}`);
    expect(resumed.body).toMatchObject({ paused: false, paused_at: null });
    expect((await t.request("GET", `/task/${before.id}?namespace=${ns}`)).body.waiting_reason).not.toBe(
      "task type paused",
    );
    const after = await outboxTypes(before.id);
    expect(after.length).toBe(signalsBefore + 1);
    expect(after.at(-1)).toBe("queue.dispatch");
  });

  it("shows the concurrency limit of a mapped type", async () => {
    const { PluginRegistry } = await import("../../functions/adapters/plugins/plugin-registry.js");
    const original = t.app.plugins;
    t.app.plugins = await PluginRegistry.load({
      tasks: { "limited*": { plugin: "noop", export: "handler", concurrency: 3 } },
    });
    try {
      const ns = freshNamespace();
      await create({ name: "limited_x" }, ns);
      const res = await t.request("GET", `/task-types?namespace=${ns}`);
      expect(res.body[0]).toMatchObject({ name: "limited_x", concurrency: 3 });
    } finally {
      t.app.plugins = original;
    }
  });

  it("refuses a name over 200 characters with 400", async () => {
    const res = await t.request("POST", `/task-types/${"n".repeat(201)}/pause`);
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe("path.name");
  });
});

describe("/openapi.json", () => {
  it("documents every task route with its schemas", async () => {
    const spec = (await t.request("GET", "/openapi.json", { key: null })).body;
    for (const [path, method] of [
      ["/task/create", "post"],
      ["/task/{task_id}", "get"],
      ["/task/{task_id}", "patch"],
      ["/task/{task_id}/cancel", "post"],
      ["/task/{task_id}/pause", "post"],
      ["/task/{task_id}/resume", "post"],
      ["/task/{task_id}/restart", "post"],
      ["/task/{task_id}/runs", "get"],
      ["/task/{task_id}/events", "get"],
      ["/tasks", "get"],
      ["/tasks/actions", "post"],
      ["/task-types", "get"],
      ["/task-types/{name}/pause", "post"],
      ["/task-types/{name}/resume", "post"],
    ] as const) {
      expect(spec.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    }
    expect(spec.components.schemas.Task.properties.waiting_reason).toBeDefined();
    expect(spec.components.schemas.CreateTask.required).toEqual(["name"]);
    expect(spec.components.schemas.CreateTask.additionalProperties).toBe(false);
    expect(spec.paths["/tasks"].get.parameters.map((p: { name: string }) => p.name)).toEqual([
      "status",
      "name",
      "label",
      "schedule_id",
      "created_after",
      "created_before",
      "limit",
      "cursor",
    ]);
  });
});
