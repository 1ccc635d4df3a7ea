import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DatabaseUnavailable } from "../../functions/core/errors.js";
import { waitingReason } from "../../functions/core/tasks/waiting-reason.js";
import { createEngineHarness, type EngineHarness } from "../helpers/engine.js";
import { hostProcessesWith } from "../helpers/host-processes.js";

// Lease 4 s, kill grace 0.5 s: a worker that cannot renew stops its attempt 1.5 s before the
// lease ends, on its own clock.
let h: EngineHarness;

beforeAll(async () => {
  h = await createEngineHarness({
    app: {
      worker: { lease_seconds: 4, heartbeat_seconds: 1, kill_grace_seconds: 0.5, max_infra_retries: 2 },
    },
  });
});
afterAll(async () => {
  await h.close();
});

describe("a worker that cannot renew its lease", () => {
  it("kills its command before the lease expires, records when, and the retry does not count", async () => {
    // Found in the host's process table by its unique argument (it runs in the sandbox, whose
    // pids are its own).
    const marker = `${60 + Math.floor(Math.random() * 900)}.5`;
    const task = await h.create({ name: "cut_off", command: `sleep ${marker}`, max_attempts: 1 });
    const queue = h.app.taskQueue;
    const heartbeat = queue.heartbeat.bind(queue);
    // The database is out of reach for this worker's renewals (everything else still works,
    // so the test can watch): what a network partition does to the heartbeat.
    queue.heartbeat = async () => {
      throw new DatabaseUnavailable();
    };
    try {
      const pool = await h.startPool({ slots: 1, maintenance: false });
      const running = await h.waitForStatus(task.id, ["running"]);
      const processes = () => hostProcessesWith(`sleep ${marker}`);
      await h.waitFor(
        async () => processes().some((p) => p.cmdline.startsWith("sleep")),
        10_000,
        "the command",
      );
      await h.waitFor(async () => pool.active === 0, 15_000, "the attempt to stop itself");
      const stoppedAt = Date.now();
      // Evidence outside TME: the command's process is gone, before the lease ran out.
      expect(processes()).toEqual([]);
      const leaseEnd = (await h.task(task.id)).lease_expires_at!;
      expect(leaseEnd.getTime()).toBeGreaterThan(stoppedAt);
      expect(running.lease_expires_at).not.toBeNull();

      const run = await h.waitFor(async () => {
        const rows = await h.database.db.rows<{ work_ended_at: Date | null }>(
          "SELECT work_ended_at FROM task_runs WHERE task_id = $1",
          [task.id],
        );
        return rows[0]?.work_ended_at ? rows[0] : undefined;
      });
      expect(run.work_ended_at!.getTime()).toBeLessThan(leaseEnd.getTime());

      // The reaper takes it back once the lease expired: the lost run does not spend the task's
      // only attempt, and the waiting reason says what happened. The pool stops first: one still
      // running would claim the task again at once, and its reason would be that attempt's.
      await pool.stop();
      await h.waitFor(async () => (await queue.reapExpired()).requeued === 1, 10_000, "the reap");
      const requeued = await h.task(task.id);
      expect(requeued).toMatchObject({ status: "queued", attempt: 1, infra_retries: 1, max_attempts: 1 });
      const events = await h.database.db.rows<{ type: string; data: Record<string, unknown> }>(
        "SELECT type, data FROM task_events WHERE task_id = $1 AND type = 'task.retrying'",
        [task.id],
      );
      expect(events).toMatchObject([{ data: { lost_to_infrastructure: true, infra_retries: 1 } }]);
      const now = new Date();
      const facts = await h.app.taskControl.waitingFacts([requeued], now);
      const reason = waitingReason(
        requeued,
        facts,
        { maxConcurrent: 4, concurrencyOf: () => undefined },
        now,
      );
      expect(reason).toContain("handed back after its worker was lost");
    } finally {
      queue.heartbeat = heartbeat;
    }
  });

  it("a task that loses its worker every time fails after worker.max_infra_retries", async () => {
    const task = await h.create({ name: "sleep", params: { seconds: 60 } });
    for (let i = 1; i <= 3; i++) {
      const claimed = await h.app.taskQueue.claim(task.id, i, `doomed-${i}`);
      expect(claimed).toHaveProperty("claimed");
      await h.database.db.query("UPDATE tasks SET lease_expires_at = now() - interval '1 s' WHERE id = $1", [
        task.id,
      ]);
      await h.app.taskQueue.reapExpired();
    }
    const failed = await h.task(task.id);
    expect(failed).toMatchObject({ status: "failed", attempt: 3, infra_retries: 3 });
    expect(failed.error).toContain("worker.max_infra_retries is 2");
  });
});
