import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../functions/core/ids.js";
import { leaseOf } from "../../functions/core/tasks/task-queue.js";
import { createEngineHarness, type EngineHarness, maxOverlap, type RunRow } from "../helpers/engine.js";
import { insertTask } from "../helpers/tasks.js";

let h: EngineHarness;

beforeAll(async () => {
  h = await createEngineHarness();
});
afterAll(async () => {
  await h.close();
});

/** n queued no-op tasks of one name, written in one statement. */
async function queueNoops(n: number, name: string): Promise<string[]> {
  const ids = Array.from({ length: n }, () => newId("tsk"));
  await h.database.db.query(
    `INSERT INTO tasks (id, namespace, name, handler, timeout_seconds, run_at)
     SELECT id, 'default', $2, 'noop', 60, now() - interval '1 second' FROM unnest($1::text[]) AS id`,
    [ids, name],
  );
  return ids;
}

describe("the local queue", () => {
  it("claims ahead of the free slots for short tasks, yet never runs more than the slots at once", async () => {
    const ids = await queueNoops(1500, "noop_ahead");
    const claimed = watchClaims();
    const pool = await h.startPool({ slots: 3, localQueueSize: 200 });
    await allSucceeded(ids, 60_000);
    await pool.stop();
    claimed.stop();
    // A claim took more than the three slots could start: the rest waited in the local queue.
    expect(Math.max(...claimed.sizes)).toBeGreaterThan(3);
    expect(Math.max(...claimed.sizes)).toBeLessThanOrEqual(3 + 200);
    const runs = await h.database.db.rows<RunRow>("SELECT * FROM task_runs WHERE task_id = ANY($1)", [ids]);
    expect(runs).toHaveLength(ids.length);
    expect(runs.every((r) => r.status === "succeeded" && r.finished_at !== null)).toBe(true);
    // A run records when its work ran: never more than three at once in three slots.
    expect(maxOverlap(runs)).toBeLessThanOrEqual(3);
    const events = await h.database.db.rows<{ type: string; n: number }>(
      "SELECT type, count(*)::int AS n FROM task_events WHERE task_id = ANY($1) GROUP BY type ORDER BY type",
      [ids],
    );
    expect(events).toEqual([
      { type: "task.started", n: ids.length },
      { type: "task.succeeded", n: ids.length },
    ]);
  }, 90_000);

  it("claims only for free slots when local_queue_size is 0", async () => {
    const ids = await queueNoops(200, "noop_no_queue");
    const claimed = watchClaims();
    const pool = await h.startPool({ slots: 2, localQueueSize: 0 });
    await allSucceeded(ids, 30_000);
    await pool.stop();
    claimed.stop();
    expect(Math.max(...claimed.sizes)).toBeLessThanOrEqual(2);
  }, 60_000);

  it("passes over wake-ups about a paused type's new tasks, and runs them as soon as it resumes", async () => {
    const name = "noop_paused_backlog";
    await h.app.taskControl.pauseType("default", name, "test");
    const backlog = await queueNoops(300, name);
    const pool = await h.startPool({ slots: 2 });
    await new Promise((r) => setTimeout(r, 300));
    const claimed = watchClaims();
    // Twenty creates, each its own commit and its own NOTIFY, over about a second.
    const created: string[] = [];
    for (let i = 0; i < 20; i++) {
      created.push((await h.create({ name, params: {} })).id);
      await new Promise((r) => setTimeout(r, 50));
    }
    claimed.stop();
    // Without the filter each NOTIFY is a claim scanning the paused backlog (20 or more);
    // with it, what is left is the 200 ms poll.
    expect(claimed.sizes.length).toBeLessThan(12);
    expect(claimed.sizes.every((n) => n === 0)).toBe(true);
    const resumedAt = Date.now();
    await h.app.taskControl.resumeType("default", name);
    await allSucceeded([...backlog, ...created], 30_000);
    expect(Date.now() - resumedAt).toBeLessThan(20_000);
    await pool.stop();
  }, 60_000);
});

/** Records how many tasks each claim of the app's queue took, until stopped. */
function watchClaims(): { sizes: number[]; stop(): void } {
  const queue = h.app.taskQueue;
  const original = queue.claimBatch;
  const sizes: number[] = [];
  queue.claimBatch = async (workerId, max) => {
    const batch = await original.call(queue, workerId, max);
    sizes.push(batch.tasks.length);
    return batch;
  };
  return {
    sizes,
    stop: () => {
      queue.claimBatch = original;
    },
  };
}

async function allSucceeded(ids: string[], timeoutMs: number): Promise<void> {
  await h.waitFor(
    async () => {
      const rows = await h.database.db.rows<{ n: number }>(
        "SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = 'succeeded'",
        [ids],
      );
      return rows[0]!.n === ids.length;
    },
    timeoutMs,
    `${ids.length} tasks to succeed`,
  );
}

describe("renewing many leases at once", () => {
  it("answers per lease: still ours, cancelled by the API, or taken over", async () => {
    const [a, b, c] = [
      await insertTask(h.database.db),
      await insertTask(h.database.db),
      await insertTask(h.database.db),
    ];
    const queue = h.app.taskQueue;
    const claimed: import("../../functions/core/tasks/task.js").Task[] = [];
    for (const id of [a, b, c]) {
      const result = await queue.claim(id, 1, "renewer");
      if ("claimed" in result) claimed.push(result.claimed);
    }
    expect(claimed).toHaveLength(3);
    const before = await h.database.db.rows<{ id: string; lease_expires_at: Date }>(
      "SELECT id, lease_expires_at FROM tasks WHERE id = ANY($1)",
      [[a, b, c]],
    );
    await h.database.db.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1", [
      b,
    ]);
    // c was taken over: another worker holds its lease now.
    await h.database.db.query("UPDATE tasks SET lease_owner = 'someone-else' WHERE id = $1", [c]);
    await new Promise((r) => setTimeout(r, 20));
    const results = await queue.renewLeases(claimed.map((t) => leaseOf(t, "renewer")));
    expect(results).toEqual(["ok", "cancelled", "lost"]);
    const after = await h.database.db.rows<{ lease_expires_at: Date }>(
      "SELECT lease_expires_at FROM task_runs WHERE task_id = $1",
      [a],
    );
    expect(after[0]!.lease_expires_at.getTime()).toBeGreaterThan(
      before.find((r) => r.id === a)!.lease_expires_at.getTime(),
    );
    await h.database.db.query(
      "UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = ANY($1)",
      [[a, c]],
    );
    await h.database.db.query(
      "UPDATE task_runs SET finished_at = now(), status = 'cancelled' WHERE task_id = ANY($1)",
      [[a, b, c]],
    );
  });
});
