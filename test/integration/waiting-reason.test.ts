import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { PluginRegistry } from "../../functions/adapters/plugins/plugin-registry.js";
import type { Db } from "../../functions/adapters/postgres/database.js";
import { PostgresTaskControlStore } from "../../functions/adapters/postgres/task-control-repository.js";
import { PostgresWorkerRegistry } from "../../functions/adapters/postgres/worker-registry.js";
import { AHEAD_COUNT_CAP } from "../../functions/core/tasks/waiting-reason.js";
import { insertRun, insertTask } from "../helpers/tasks.js";
import { withTestApp } from "../helpers/test-app.js";

const t = withTestApp({ app: { MAX_CONCURRENT_TASKS: 3 } });
beforeAll(async () => {
  t.app.plugins = await PluginRegistry.load({
    tasks: {
      "limited*": { plugin: "noop", export: "handler", concurrency: 2 },
      "noop*": { plugin: "noop", export: "handler" },
    },
  });
});
beforeEach(async () => {
  // The queue is shared by every namespace: each case starts from an empty one.
  await t.app.db.query("TRUNCATE tasks, task_runs, task_events, task_type_pauses CASCADE");
});

const reasonOf = async (id: string, namespace = "default") =>
  (await t.request("GET", `/task/${id}?namespace=${namespace}`)).body.waiting_reason;

describe("waiting_reason", () => {
  it("is null for running and finished tasks", async () => {
    for (const status of ["running", "succeeded", "failed", "timed_out", "cancelled"] as const) {
      expect(await reasonOf(await insertTask(t.app.db, { status }))).toBeNull();
    }
  });

  it("says paused for a paused task", async () => {
    expect(await reasonOf(await insertTask(t.app.db, { status: "paused" }))).toBe("paused");
  });

  it("gives the retry time of a retrying task", async () => {
    const runAt = new Date("2099-01-01T00:00:05.000Z");
    expect(await reasonOf(await insertTask(t.app.db, { status: "retrying", run_at: runAt }))).toBe(
      "retrying at 2099-01-01T00:00:05.000Z",
    );
  });

  it("says task type paused for a queued task of a paused type", async () => {
    const id = await insertTask(t.app.db, { name: "noop_report" });
    await t.request("POST", "/task-types/noop_report/pause");
    expect(await reasonOf(id)).toBe("task type paused");
  });

  it("gives run_at for a task scheduled in the future", async () => {
    const id = await insertTask(t.app.db, { run_at: new Date("2099-03-01T10:00:00.000Z") });
    expect(await reasonOf(id)).toBe("scheduled for 2099-03-01T10:00:00.000Z");
  });

  it("names the type's concurrency limit when its running tasks fill it", async () => {
    await insertTask(t.app.db, { name: "limited_x", status: "running" });
    const id = await insertTask(t.app.db, { name: "limited_x" });
    expect(await reasonOf(id)).toBe("next in queue, waiting for a free worker");
    await insertTask(t.app.db, { name: "limited_x", status: "running", namespace: "other" });
    expect(await reasonOf(id)).toBe("concurrency limit of limited_x reached (2 of 2 running)");
  });

  it("counts a cancelled task whose command is still dying (its run is open) against the limit", async () => {
    const dying = await insertTask(t.app.db, { name: "limited_x", status: "cancelled" });
    await insertRun(t.app.db, dying, { attempt: 1, status: "running" });
    await insertTask(t.app.db, { name: "limited_x", status: "running" });
    const id = await insertTask(t.app.db, { name: "limited_x" });
    expect(await reasonOf(id)).toBe("concurrency limit of limited_x reached (2 of 2 running)");
  });

  it("with no worker registered, says all MAX_CONCURRENT_TASKS slots are busy when that many run, in any namespace", async () => {
    const id = await insertTask(t.app.db, { name: "noop" });
    await insertTask(t.app.db, { status: "running" });
    await insertTask(t.app.db, { status: "running", namespace: "other" });
    expect(await reasonOf(id)).toBe("next in queue, waiting for a free worker");
    await insertTask(t.app.db, { status: "running", namespace: "third" });
    expect(await reasonOf(id)).toBe("all worker slots busy (3 running, 3 slots: MAX_CONCURRENT_TASKS)");
  });

  it("with live workers, counts their slots summed (MAX_CONCURRENT_TASKS is per process); a dead one's do not count", async () => {
    const registry = new PostgresWorkerRegistry(t.app.db);
    const worker = (id: string) => ({ id, host: "h", pid: 1, slots: 3, deadAfterSeconds: 10 });
    await registry.register(worker("w-a"));
    await registry.register(worker("w-b"));
    await registry.register(worker("w-dead"));
    await t.app.db.query(
      "UPDATE workers SET heartbeat_at = now() - interval '11 seconds' WHERE id = 'w-dead'",
    );
    try {
      const id = await insertTask(t.app.db, { name: "noop" });
      for (let i = 0; i < 3; i++) await insertTask(t.app.db, { status: "running" });
      expect(await reasonOf(id)).toBe("next in queue, waiting for a free worker");
      for (let i = 0; i < 3; i++) await insertTask(t.app.db, { status: "running", namespace: "other" });
      expect(await reasonOf(id)).toBe("all worker slots busy (6 running, 6 slots across 2 workers)");
    } finally {
      await t.app.db.query("DELETE FROM workers");
    }
  });

  it("counts the due tasks ahead of it in claim order: higher priority, or equal and earlier", async () => {
    const now = Date.now();
    const runAt = new Date(now - 10_000);
    const id = await insertTask(t.app.db, { priority: 5, run_at: runAt });
    await insertTask(t.app.db, { priority: 7 });
    await insertTask(t.app.db, { priority: 9, namespace: "other" });
    await insertTask(t.app.db, { priority: 5, run_at: new Date(now - 20_000) });
    // Not ahead: behind it, lower, not due, paused, held type, not queued.
    await insertTask(t.app.db, { priority: 5, run_at: new Date(now - 5_000) });
    await insertTask(t.app.db, { priority: 4 });
    await insertTask(t.app.db, { priority: 9, run_at: new Date(now + 60_000) });
    await insertTask(t.app.db, { priority: 9, status: "paused" });
    await insertTask(t.app.db, { priority: 9, name: "noop_held" });
    await t.request("POST", "/task-types/noop_held/pause");
    await insertTask(t.app.db, { priority: 9, status: "retrying" });
    expect(await reasonOf(id)).toBe("queued behind 3 tasks of higher or equal priority");
  });

  it("counts the line as claims take it, fair between namespaces of one priority", async () => {
    const now = Date.now();
    // busy: five older tasks, two of them running; quiet: one task, the youngest of all.
    const busy: string[] = [];
    for (let i = 0; i < 5; i++)
      busy.push(await insertTask(t.app.db, { namespace: "busy", run_at: new Date(now - 60_000 + i) }));
    for (let i = 0; i < 2; i++) await insertTask(t.app.db, { namespace: "busy", status: "running" });
    const quiet = await insertTask(t.app.db, { namespace: "quiet", run_at: new Date(now - 1_000) });
    // busy holds two slots: its first two queued tasks take turns 3 and 4, quiet's its first.
    expect(await reasonOf(quiet, "quiet")).toBe("next in queue, waiting for a free worker");
    expect(await reasonOf(busy[0]!, "busy")).toBe("queued behind 1 task of higher or equal priority");
    expect(await reasonOf(busy[3]!, "busy")).toBe("queued behind 4 tasks of higher or equal priority");
    // A higher priority goes first, whatever its namespace.
    await insertTask(t.app.db, { namespace: "busy", priority: 9 });
    expect(await reasonOf(quiet, "quiet")).toBe("queued behind 1 task of higher or equal priority");
  });

  it("is right for every task of a mixed list page, from a fixed number of queries", async () => {
    const expected = new Map<string, string | null>();
    expected.set(await insertTask(t.app.db, { status: "paused" }), "paused");
    expected.set(await insertTask(t.app.db, { status: "running" }), null);
    expected.set(
      await insertTask(t.app.db, { run_at: new Date("2099-01-01T00:00:00.000Z") }),
      "scheduled for 2099-01-01T00:00:00.000Z",
    );
    expected.set(await insertTask(t.app.db, { priority: 9 }), "next in queue, waiting for a free worker");
    for (let i = 0; i < 20; i++) {
      expected.set(
        await insertTask(t.app.db, { priority: 1, run_at: new Date(Date.now() - 100_000 + i) }),
        `queued behind ${i + 1} ${i + 1 === 1 ? "task" : "tasks"} of higher or equal priority`,
      );
    }

    let queries = 0;
    const counting: Db = {
      query: (text, values) => {
        queries++;
        return t.app.db.query(text, values);
      },
      rows: (text, values) => {
        queries++;
        return t.app.db.rows(text, values);
      },
      transaction: (fn, options) =>
        t.app.db.transaction(
          (tx) =>
            fn({
              query: (text, values) => {
                queries++;
                return tx.query(text, values);
              },
            }),
          options,
        ),
    };
    const original = t.app.taskControl;
    t.app.taskControl = new PostgresTaskControlStore(counting);
    try {
      const res = await t.request("GET", "/tasks?limit=100");
      expect(res.body).toHaveLength(expected.size);
      for (const task of res.body)
        expect([task.id, task.waiting_reason]).toEqual([task.id, expected.get(task.id)]);
      // One for the page, one for the facts of all its tasks.
      expect(queries).toBeLessThanOrEqual(2);
    } finally {
      t.app.taskControl = original;
    }
  });

  it("reads places in a deep queue from one capped scan: exact within the cap, 'more than' beyond it", async () => {
    // AHEAD_COUNT_CAP + 50 queued tasks of one priority, oldest first in claim order.
    await t.app.db.query(
      `INSERT INTO tasks (id, namespace, name, handler, status, priority, timeout_seconds, run_at)
       SELECT 'tsk_deep_' || lpad(g::text, 6, '0'), 'default', 'noop', 'noop', 'queued', 5, 60,
         now() - interval '1 hour' + g * interval '1 ms'
       FROM generate_series(0, $1::int + 49) g`,
      [AHEAD_COUNT_CAP],
    );
    expect(await reasonOf("tsk_deep_000000")).toBe("next in queue, waiting for a free worker");
    expect(await reasonOf("tsk_deep_000007")).toBe("queued behind 7 tasks of higher or equal priority");
    expect(await reasonOf(`tsk_deep_${String(AHEAD_COUNT_CAP + 20).padStart(6, "0")}`)).toBe(
      `queued behind more than ${AHEAD_COUNT_CAP} tasks of higher or equal priority`,
    );
  });

  it("is the same in a create's answer as in a GET right after, and a create of a paused type reads no facts after its commit", async () => {
    const created = async (body: Record<string, unknown>) => {
      const res = await t.request("POST", "/task/create", { body });
      expect(res.status).toBe(201);
      return { id: res.body.id as string, reason: res.body.waiting_reason as string };
    };
    const factsReads = vi.spyOn(t.app.db, "query");
    const factsReadCount = () =>
      factsReads.mock.calls.filter(([sql]) => sql.includes("WITH asked AS")).length;
    try {
      // Facts from the create's own statement: the type is paused, there is no line to read.
      await t.request("POST", "/task-types/noop_report/pause");
      const paused = await created({ name: "noop_report" });
      expect(paused.reason).toBe("task type paused");
      expect(factsReadCount()).toBe(0);
      const later = await created({ name: "noop", run_at: "2099-03-01T10:00:00.000Z" });
      expect(later.reason).toBe("scheduled for 2099-03-01T10:00:00.000Z");
      expect(factsReadCount()).toBe(0);
      // A due task of a running type has a place in the line: read after the commit.
      await insertTask(t.app.db, { name: "limited_x", status: "running" });
      await insertTask(t.app.db, { name: "limited_x", status: "running", namespace: "other" });
      const limited = await created({ name: "limited_x" });
      expect(limited.reason).toBe("concurrency limit of limited_x reached (2 of 2 running)");
      await insertTask(t.app.db, { name: "noop", priority: 9 });
      const behind = await created({ name: "noop", priority: 9 });
      expect(behind.reason).toBe("queued behind 1 task of higher or equal priority");
      for (const { id, reason } of [paused, later, limited, behind]) expect(await reasonOf(id)).toBe(reason);
    } finally {
      factsReads.mockRestore();
    }
  });
});
