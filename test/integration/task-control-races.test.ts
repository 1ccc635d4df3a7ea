import pg from "pg";
import { describe, expect, it } from "vitest";
import { bulkAction } from "../../functions/core/tasks/control-task.js";
import { insertTask } from "../helpers/tasks.js";
import { withTestApp } from "../helpers/test-app.js";

const t = withTestApp();

describe("control actions racing the engine", () => {
  it("a pause that waits on a worker's claim sees the task running and answers 409, changing nothing", async () => {
    const id = await insertTask(t.app.db, { status: "queued" });
    const worker = new pg.Client({ connectionString: t.database.url });
    await worker.connect();
    try {
      // The engine's claim, still uncommitted while the pause arrives.
      await worker.query("BEGIN");
      await worker.query(
        `UPDATE tasks SET status = 'running', attempt = 1, lease_owner = 'w', lease_expires_at = now() + interval '1 minute',
           started_at = now() WHERE id = $1 AND status = 'queued'`,
        [id],
      );
      const pause = t.request("POST", `/task/${id}/pause`);
      await new Promise((r) => setTimeout(r, 200));
      await worker.query("COMMIT");
      const res = await pause;
      expect(res.status).toBe(409);
      expect(res.body.error.message).toContain("it is running");
    } finally {
      await worker.end();
    }
    const [row] = await t.app.db.rows("SELECT status, lease_owner FROM tasks WHERE id = $1", [id]);
    expect(row).toEqual({ status: "running", lease_owner: "w" });
    expect(await t.app.db.rows("SELECT type FROM task_events WHERE task_id = $1", [id])).toEqual([]);
  });

  it("two cancels at once: one wins, the other is a 409, one event", async () => {
    const id = await insertTask(t.app.db, { status: "queued" });
    const [a, b] = await Promise.all([
      t.request("POST", `/task/${id}/cancel`),
      t.request("POST", `/task/${id}/cancel`),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    expect(await t.app.db.rows("SELECT type FROM task_events WHERE task_id = $1", [id])).toEqual([
      { type: "task.cancelled" },
    ]);
  });
});

describe("bulkAction in batches", () => {
  const deps = () => ({ control: t.app.taskControl, config: t.app.config.app, now: () => new Date() });

  it("walks every selected task across batches, stops at the cap with more, and finishes when called again", async () => {
    const ns = "bulk_batches";
    const ids: string[] = [];
    for (let i = 0; i < 23; i++) ids.push(await insertTask(t.app.db, { namespace: ns, status: "queued" }));
    await insertTask(t.app.db, { namespace: ns, status: "succeeded" });

    const first = await bulkAction(deps(), ns, "pause", { name: "noop" }, { batchSize: 4, maxChanges: 10 });
    expect(first).toEqual({ changed: 10, skipped: 1, more: true });
    const second = await bulkAction(deps(), ns, "pause", { name: "noop" }, { batchSize: 4, maxChanges: 10 });
    expect(second).toEqual({ changed: 10, skipped: 11, more: true });
    const third = await bulkAction(deps(), ns, "pause", { name: "noop" }, { batchSize: 4, maxChanges: 10 });
    expect(third).toEqual({ changed: 3, skipped: 21, more: false });

    const rows = await t.app.db.rows<{ status: string; n: number }>(
      "SELECT status, count(*) AS n FROM tasks WHERE namespace = $1 GROUP BY status ORDER BY status",
      [ns],
    );
    expect(rows).toEqual([
      { status: "paused", n: 23 },
      { status: "succeeded", n: 1 },
    ]);
    const [events] = await t.app.db.rows("SELECT count(*) AS n FROM task_events WHERE task_id = ANY($1)", [
      ids,
    ]);
    expect(events).toEqual({ n: 23 });
  });
});
