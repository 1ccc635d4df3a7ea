import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { taskMaintenance, workerPool } from "../../functions/local/worker-pool.js";
import { withTestApp } from "../helpers/test-app.js";
import { waitFor } from "../helpers/wait.js";

// Finding 2: clean_logs run from namespace A deleted every namespace's task events, runs and
// deliveries.
let stop: () => Promise<void>;
const t = withTestApp({
  app: {
    worker: { lease_seconds: 30, heartbeat_seconds: 1, poll_interval_ms: 100, kill_grace_seconds: 1 },
  },
});
beforeAll(async () => {
  const pool = workerPool(t.app, { slots: 1 });
  const maintenance = taskMaintenance(t.app);
  await pool.start();
  maintenance.start();
  stop = async () => {
    await pool.stop();
    await maintenance.stop();
  };
});
afterAll(async () => {
  await stop();
});

/** Old history in a namespace: a finished task with an old run and event, an old settled delivery. */
async function plantHistory(namespace: string) {
  const db = t.app.db;
  const id = `tsk_old_${namespace}`;
  await db.query(
    `INSERT INTO tasks (id, namespace, name, handler, status, attempt, max_attempts, timeout_seconds, finished_at)
     VALUES ($1, $2, 'noop', 'noop', 'succeeded', 1, 1, 60, now() - interval '40 days')`,
    [id, namespace],
  );
  await db.query(
    `INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, finished_at)
     VALUES ($1, 0, 1, 'succeeded', 'w', now() - interval '41 days', now() - interval '40 days')`,
    [id],
  );
  await db.query(
    `INSERT INTO task_events (event_id, namespace, task_id, type, occurred_at, data)
     VALUES ($1, $2, $3, 'task.succeeded', now() - interval '40 days', '{}')`,
    [`evt_old_${namespace}`, namespace, id],
  );
  await db.query(
    `INSERT INTO subscriptions (id, namespace, event_types, callback_url, format) VALUES ($1, $2, '{task.*}', 'https://x.example', 'json')`,
    [`sub_${namespace}`, namespace],
  );
  await db.query(
    `INSERT INTO deliveries (id, subscription_id, event_id, event_type, attempt, status, created_at, finished_at)
     VALUES ($1, $2, 'e', 'task.failed', 1, 'succeeded', now() - interval '40 days', now() - interval '40 days')`,
    [`dlv_${namespace}`, `sub_${namespace}`],
  );
}

async function historyOf(namespace: string) {
  const [row] = await t.app.db.rows<{ events: number; runs: number; deliveries: number }>(
    `SELECT (SELECT count(*)::int FROM task_events WHERE task_id = $1) AS events,
            (SELECT count(*)::int FROM task_runs WHERE task_id = $1) AS runs,
            (SELECT count(*)::int FROM deliveries WHERE id = $2) AS deliveries`,
    [`tsk_old_${namespace}`, `dlv_${namespace}`],
  );
  return row;
}

async function runToEnd(key: string, body: object, namespace: string) {
  const created = await t.request("POST", "/task/create", { key, body });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return waitFor(
    "clean_logs to finish",
    async () => {
      const task = (await t.request("GET", `/task/${created.body.id}?namespace=${namespace}`)).body;
      return ["succeeded", "failed"].includes(task.status) ? task : undefined;
    },
    20_000,
  );
}

describe("clean_logs is tenant-safe", () => {
  it("cleans only the namespace it runs in", async () => {
    for (const ns of ["tenant-a", "tenant-b"]) await plantHistory(ns);
    const keyA = await t.keyWith(["tasks:write", "tasks:read"], "tenant-a");
    const done = await runToEnd(keyA, { name: "clean_logs" }, "tenant-a");
    expect(done.status).toBe("succeeded");
    expect(done.result).toEqual({
      deleted: { task_events: 1, task_runs: 1, deliveries: 1 },
      namespace: "tenant-a",
    });
    expect(await historyOf("tenant-a")).toEqual({ events: 0, runs: 0, deliveries: 0 });
    expect(await historyOf("tenant-b")).toEqual({ events: 1, runs: 1, deliveries: 1 });
  });

  it("all namespaces needs an admin key, at task create, schedule create, schedule change and trigger", async () => {
    const writer = await t.keyWith(["tasks:write", "schedules:write"], "tenant-a");
    const body = { name: "clean_logs", params: { all_namespaces: true } };
    const refused = await t.request("POST", "/task/create", { key: writer, body });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({
      code: "forbidden",
      details: [{ path: "scope", message: "requires admin" }],
    });
    const schedule = await t.request("POST", "/schedule", {
      key: writer,
      body: { ...body, interval: 86400 },
    });
    expect(schedule.status).toBe(403);

    // An admin's schedule in tenant-a: the tenant's own writer may neither retime nor fire it.
    const adminSchedule = await t.request("POST", "/schedule?namespace=tenant-a", {
      body: { ...body, interval: 86400 },
    });
    expect(adminSchedule.status).toBe(201);
    const id = adminSchedule.body.id;
    expect(
      (await t.request("PATCH", `/schedule/${id}`, { key: writer, body: { interval: 3600 } })).status,
    ).toBe(403);
    expect((await t.request("POST", `/schedule/${id}/trigger`, { key: writer })).status).toBe(403);
    // Nothing ran for the refused calls.
    const tasks = await t.app.db.rows("SELECT id FROM tasks WHERE schedule_id = $1", [id]);
    expect(tasks).toEqual([]);
  });

  it("an admin's all-namespaces run cleans every namespace", async () => {
    await plantHistory("tenant-c");
    const done = await runToEnd(
      t.adminKey,
      { name: "clean_logs", params: { all_namespaces: true } },
      "default",
    );
    expect(done.status).toBe("succeeded");
    expect(done.result.namespace).toBe("*");
    for (const ns of ["tenant-b", "tenant-c"]) {
      expect(await historyOf(ns)).toEqual({ events: 0, runs: 0, deliveries: 0 });
    }
  });
});
