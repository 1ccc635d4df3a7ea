import type { SQSEvent } from "aws-lambda";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type QueueSignalRoute,
  TASK_QUEUED_CHANNEL,
} from "../../functions/adapters/postgres/event-writer.js";
import { PostgresTaskQueue } from "../../functions/adapters/postgres/task-queue-repository.js";
import type { Task } from "../../functions/core/tasks/task.js";
import { leaseOf } from "../../functions/core/tasks/task-queue.js";
import { createWorkerHandler } from "../../functions/handlers/worker.js";
import { createEngineHarness, type EngineHarness, maxOverlap, type RunRow } from "../helpers/engine.js";
import { insertTask } from "../helpers/tasks.js";

let h: EngineHarness;

beforeAll(async () => {
  h = await createEngineHarness({
    plugins: { "limited_*": { plugin: "sleep", export: "handler", concurrency: 2 } },
  });
});
afterAll(async () => {
  await h.close();
});

async function runsOf(ids: string[]): Promise<RunRow[]> {
  return h.database.db.rows<RunRow>(
    "SELECT * FROM task_runs WHERE task_id = ANY($1) ORDER BY started_at, id",
    [ids],
  );
}

async function allFinished(ids: string[], timeoutMs = 20_000): Promise<void> {
  await h.waitFor(
    async () => {
      const rows = await h.database.db.rows<{ n: number }>(
        `SELECT count(*) AS n FROM tasks WHERE id = ANY($1) AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled')`,
        [ids],
      );
      return rows[0]!.n === ids.length;
    },
    timeoutMs,
    `${ids.length} tasks to finish`,
  );
}

/** The app's task queue as configured, with its queue signals on the given route. */
function queueSignalling(queueSignals: QueueSignalRoute): PostgresTaskQueue {
  return new PostgresTaskQueue(h.database.db, {
    limitOf: (name) => h.app.plugins.concurrencyOf(name),
    leaseSeconds: h.app.config.app.worker.lease_seconds,
    outputTailBytes: h.app.config.app.shell.output_tail_bytes,
    maxInfraRetries: h.app.config.app.worker.max_infra_retries,
    queueSignals,
  });
}

function sqsEvent(records: Array<{ id: string; taskId: string; attempt: number }>): SQSEvent {
  return {
    Records: records.map(
      (r) =>
        ({
          messageId: r.id,
          body: JSON.stringify({
            task_id: r.taskId,
            attempt: r.attempt,
            priority: 5,
            run_at: new Date().toISOString(),
          }),
        }) as never,
    ),
  };
}

describe("claiming", () => {
  it("runs higher priorities first, then older run_at (one slot)", async () => {
    const priorities = [1, 9, 5, 9, 3, 7];
    const tasks: Task[] = [];
    for (const priority of priorities) tasks.push(await h.create({ name: "noop", priority }));
    const pool = await h.startPool({ slots: 1 });
    await allFinished(tasks.map((t) => t.id));
    await pool.stop();
    const order = (await runsOf(tasks.map((t) => t.id))).map((r) =>
      tasks.findIndex((t) => t.id === r.task_id),
    );
    // 9 (created 2nd), 9 (4th), 7, 5, 3, 1
    expect(order).toEqual([1, 3, 5, 2, 4, 0]);
  });

  it("never runs more than MAX_CONCURRENT_TASKS at once, and does reach it", async () => {
    const tasks: Task[] = [];
    for (let i = 0; i < 12; i++) tasks.push(await h.create({ name: "sleep", params: { seconds: 0.3 } }));
    // No slots given: the pool takes its size from the configured MAX_CONCURRENT_TASKS.
    const limit = h.app.config.app.MAX_CONCURRENT_TASKS;
    expect(limit).toBeLessThan(12);
    const pool = await h.startPool();
    await allFinished(tasks.map((t) => t.id));
    await pool.stop();
    expect(maxOverlap(await runsOf(tasks.map((t) => t.id)))).toBe(limit);
  });

  it("holds per-type concurrency limits across two pools under load", async () => {
    const limited: Task[] = [];
    const free: Task[] = [];
    for (let i = 0; i < 10; i++)
      limited.push(await h.create({ name: "limited_x", params: { seconds: 0.2 } }));
    for (let i = 0; i < 6; i++) free.push(await h.create({ name: "sleep", params: { seconds: 0.2 } }));
    const pools = [await h.startPool({ slots: 4 }), await h.startPool({ slots: 4, maintenance: false })];
    await allFinished([...limited, ...free].map((t) => t.id));
    for (const pool of pools) await pool.stop();
    expect(maxOverlap(await runsOf(limited.map((t) => t.id)))).toBe(2);
    // The limit of one type does not hold back the others.
    expect(maxOverlap(await runsOf([...limited, ...free].map((t) => t.id)))).toBeGreaterThan(2);
  });

  it("runs nothing of a paused task type until the pause is lifted", async () => {
    await h.database.db.query(
      "INSERT INTO task_type_pauses (namespace, name) VALUES ('default', 'sleep_held')",
    );
    const task = await h.create({ name: "sleep_held", params: { seconds: 0 } });
    const other = await h.create({ name: "sleep_other", params: { seconds: 0 } });
    const pool = await h.startPool({ slots: 2 });
    await h.waitForStatus(other.id, ["succeeded"]);
    await new Promise((r) => setTimeout(r, 600)); // three poll intervals
    expect((await h.task(task.id)).status).toBe("queued");
    // The SQS path skips it too.
    const worker = createWorkerHandler(h.app, { workerId: "sqs" });
    const result = await worker(sqsEvent([{ id: "m1", taskId: task.id, attempt: 1 }]));
    expect(result).toMatchObject({ batchItemFailures: [], results: { m1: "skipped" } });
    expect(await h.runs(task.id)).toEqual([]);
    await h.database.db.query("DELETE FROM task_type_pauses WHERE name = 'sleep_held'");
    await h.waitForStatus(task.id, ["succeeded"], 3000);
    await pool.stop();
  });

  it("does not start a delayed task before its run_at", async () => {
    const runAt = new Date(Date.now() + 1200);
    const task = await h.create({ name: "noop", run_at: runAt });
    const pool = await h.startPool({ slots: 1 });
    await new Promise((r) => setTimeout(r, 700));
    expect((await h.task(task.id)).status).toBe("queued");
    const done = await h.waitForStatus(task.id, ["succeeded"], 5000);
    expect(done.started_at!.getTime()).toBeGreaterThanOrEqual(runAt.getTime() - 5);
    await pool.stop();
  });
});

describe("wake-ups", () => {
  it("runs a task whose notification never came, by the poll", async () => {
    // Written straight to the table: no NOTIFY at all.
    const id = await insertTask(h.database.db, { name: "noop" });
    const pool = await h.startPool({ slots: 1, maintenance: false });
    const extra = await insertTask(h.database.db, { name: "noop" });
    await h.waitForStatus(id, ["succeeded"], 3000);
    await h.waitForStatus(extra, ["succeeded"], 3000);
    await pool.stop();
  });

  it("reconnects a dropped listener and catches up, so a task never waits for a slow poll", async () => {
    const slow = await createEngineHarness({ app: { worker: { poll_interval_ms: 60_000 } } });
    try {
      await slow.startPool({ slots: 1, maintenance: false });
      const first = await slow.create({ name: "noop" });
      await slow.waitForStatus(first.id, ["succeeded"], 3000);
      const dropped = await slow.database.db.rows<{ ok: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
         WHERE application_name = 'tme-listener' AND datname = current_database()`,
      );
      expect(dropped).toEqual([{ ok: true }]);
      // Its NOTIFY may go out while no one listens: the reconnect's catch-up must find it.
      const second = await slow.create({ name: "noop" });
      await slow.waitForStatus(second.id, ["succeeded"], 5000);
      const third = await slow.create({ name: "noop" });
      await slow.waitForStatus(third.id, ["succeeded"], 3000);
    } finally {
      await slow.close();
    }
  });
});

describe("the SQS-shaped worker handler", () => {
  it("runs a task once when the same message is delivered twice, even at the same time", async () => {
    const task = await h.create({ name: "sleep", params: { seconds: 0.2 } });
    const worker = createWorkerHandler(h.app, { workerId: "sqs-a" });
    const other = createWorkerHandler(h.app, { workerId: "sqs-b" });
    const [a, b] = await Promise.all([
      worker(sqsEvent([{ id: "m-a", taskId: task.id, attempt: 1 }])),
      other(sqsEvent([{ id: "m-b", taskId: task.id, attempt: 1 }])),
    ]);
    expect([a.results["m-a"], b.results["m-b"]].sort()).toEqual(["skipped", "succeeded"]);
    const late = await worker(sqsEvent([{ id: "m-c", taskId: task.id, attempt: 1 }]));
    expect(late.results["m-c"]).toBe("skipped");
    expect(await h.runs(task.id)).toHaveLength(1);
    expect((await h.task(task.id)).status).toBe("succeeded");
  });

  it("notices a cancel through its heartbeat when no notification arrives (the cloud path)", async () => {
    // No pool and no LISTEN here: only the heartbeat (every second) can tell the worker.
    const worker = createWorkerHandler(h.app, { workerId: "heartbeat-test" });
    const task = await h.create({ name: "sleep", params: { seconds: 20 } });
    const running = worker(sqsEvent([{ id: "m-hb", taskId: task.id, attempt: 1 }]));
    await h.waitForStatus(task.id, ["running"]);
    await h.database.db.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1", [
      task.id,
    ]);
    const started = Date.now();
    const result = await running;
    expect(Date.now() - started).toBeLessThan(2500);
    expect(result).toMatchObject({ batchItemFailures: [], results: { "m-hb": "cancelled" } });
    expect(await h.runs(task.id)).toMatchObject([{ status: "cancelled" }]);
  });

  it("skips a task whose type is at its limit, and signals it again when a slot frees", async () => {
    // The cloud's queue: its signals are outbox rows (relayed to SQS); locally they are NOTIFY only.
    const cloudQueue = queueSignalling("outbox");
    const worker = createWorkerHandler({ ...h.app, taskQueue: cloudQueue }, { workerId: "sqs-limit" });
    const [a, b, c] = [
      await h.create({ name: "limited_sqs", params: { seconds: 0.3 } }),
      await h.create({ name: "limited_sqs", params: { seconds: 0.3 } }),
      await h.create({ name: "limited_sqs", params: { seconds: 0 } }),
    ];
    const running = Promise.all([
      worker(sqsEvent([{ id: "a", taskId: a!.id, attempt: 1 }])),
      worker(sqsEvent([{ id: "b", taskId: b!.id, attempt: 1 }])),
    ]);
    await h.waitFor(
      async () => (await h.task(b!.id)).status === "running" && (await h.task(a!.id)).status === "running",
    );
    const full = await worker(sqsEvent([{ id: "c", taskId: c!.id, attempt: 1 }]));
    expect(full.results.c).toBe("skipped");
    const signals = () =>
      h.database.db.rows("SELECT id FROM outbox WHERE type = 'queue.dispatch' AND payload->>'task_id' = $1", [
        c!.id,
      ]);
    const before = (await signals()).length;
    await running;
    expect((await signals()).length).toBeGreaterThan(before);
    expect((await worker(sqsEvent([{ id: "c2", taskId: c!.id, attempt: 1 }]))).results.c2).toBe("succeeded");
  });

  it("locally, a freed slot of a limited type wakes every pool with one NOTIFY", async () => {
    const localQueue = queueSignalling("notify");
    const task = await h.create({ name: "limited_local", params: { seconds: 0 }, priority: 9 });
    const claimed = await localQueue.claim(task!.id, 1, "local-limit");
    if (!("claimed" in claimed)) throw new Error("not claimed");
    const listener = new pg.Client({ connectionString: h.database.url });
    await listener.connect();
    try {
      const heard: string[] = [];
      listener.on("notification", (n) => heard.push(n.payload ?? ""));
      await listener.query(`LISTEN ${TASK_QUEUED_CHANNEL}`);
      const outboxBefore = await h.database.db.rows("SELECT id FROM outbox WHERE type = 'queue.dispatch'");
      expect(
        await localQueue.finish(
          leaseOf(claimed.claimed, "local-limit"),
          { status: "succeeded", result: null },
          {},
        ),
      ).toBe(true);
      await h.waitFor(async () => heard.length > 0);
      // About no type in particular (every pool wakes), and no outbox row: nothing reads one locally.
      expect(heard).toEqual([""]);
      expect(await h.database.db.rows("SELECT id FROM outbox WHERE type = 'queue.dispatch'")).toHaveLength(
        outboxBefore.length,
      );
    } finally {
      await listener.end();
    }
  });

  it("answers a record it could not process as a batch item failure, and skips malformed ones", async () => {
    // These two failures are expected: keep them out of the test output.
    const quiet = h.app.logger.child({});
    quiet.level = "silent";
    const worker = createWorkerHandler({ ...h.app, logger: quiet }, { workerId: "sqs-x" });
    const broken = { ...h.app, logger: quiet, taskQueue: Object.create(h.app.taskQueue) };
    broken.taskQueue.claim = async () => {
      throw new Error("database unreachable");
    };
    const failing = createWorkerHandler(broken, { workerId: "sqs-y" });
    const task = await h.create({ name: "noop" });
    const result = await failing(sqsEvent([{ id: "bad-db", taskId: task.id, attempt: 1 }]));
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: "bad-db" }]);
    const malformed = await worker({ Records: [{ messageId: "junk", body: "{not json" } as never] });
    expect(malformed).toMatchObject({ batchItemFailures: [], results: { junk: "skipped" } });
    // The task is untouched and still runs from a good message.
    const ok = await worker(sqsEvent([{ id: "good", taskId: task.id, attempt: 1 }]));
    expect(ok.results.good).toBe("succeeded");
  });
});

describe("leases and fencing", () => {
  it("a worker whose lease was taken over finds its late completion updates nothing", async () => {
    const task = await h.create({ name: "noop", max_attempts: 3 });
    const claimed = await h.app.taskQueue.claim(task.id, 1, "worker-a");
    if (!("claimed" in claimed)) throw new Error("not claimed");
    const leaseA = leaseOf(claimed.claimed, "worker-a");
    await h.database.db.query("UPDATE tasks SET lease_expires_at = now() - interval '1 s' WHERE id = $1", [
      task.id,
    ]);
    await h.database.db.query(
      "UPDATE task_runs SET lease_expires_at = now() - interval '1 s' WHERE task_id = $1",
      [task.id],
    );
    expect(await h.app.taskQueue.reapExpired()).toMatchObject({ requeued: 1, failed: 0 });
    expect(await h.task(task.id)).toMatchObject({ status: "queued", attempt: 1, lease_owner: null });
    expect(await h.runs(task.id)).toMatchObject([{ attempt: 1, status: "lost" }]);

    // Late: heartbeat, progress and completion of worker A change nothing.
    expect(await h.app.taskQueue.heartbeat(leaseA)).toBe("lost");
    expect(await h.app.taskQueue.progress(leaseA, { percent: 50 }, true)).toBe(false);
    expect(await h.app.taskQueue.finish(leaseA, { status: "succeeded", result: "late" }, {})).toBe(false);
    expect(await h.task(task.id)).toMatchObject({ status: "queued", result: null, progress: null });

    // Worker B takes attempt 2; A's completion still matches nothing.
    const again = await h.app.taskQueue.claim(task.id, 2, "worker-b");
    expect("claimed" in again).toBe(true);
    expect(await h.app.taskQueue.finish(leaseA, { status: "failed", error: "late" }, {})).toBe(false);
    expect(await h.task(task.id)).toMatchObject({ status: "running", attempt: 2, lease_owner: "worker-b" });
    const types = (
      await h.database.db.rows<{ type: string }>(
        "SELECT type FROM task_events WHERE task_id = $1 ORDER BY id",
        [task.id],
      )
    ).map((e) => e.type);
    expect(types).toEqual(["task.created", "task.started", "task.retrying", "task.started"]);
  });

  it("requeues a task whose lease expired on its last attempt: a lost worker does not spend it", async () => {
    const task = await h.create({ name: "noop", max_attempts: 1 });
    await h.app.taskQueue.claim(task.id, 1, "worker-dead");
    await h.database.db.query("UPDATE tasks SET lease_expires_at = now() - interval '1 s' WHERE id = $1", [
      task.id,
    ]);
    expect(await h.app.taskQueue.reapExpired()).toMatchObject({ requeued: 1, failed: 0 });
    const reaped = await h.task(task.id);
    expect(reaped).toMatchObject({ status: "queued", attempt: 1, infra_retries: 1, finished_at: null });
    expect(reaped.error).toContain("lease expired");
    // Its next attempt is claimable although attempt = max_attempts: the lost run did not count.
    expect(await h.app.taskQueue.claim(task.id, 2, "worker-next")).toHaveProperty("claimed");
    await h.database.db.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1", [
      task.id,
    ]);
  });

  it("keeps a long task alive by heartbeat well past its lease", async () => {
    const short = await createEngineHarness({
      app: { worker: { lease_seconds: 3, heartbeat_seconds: 1, kill_grace_seconds: 0.5 } },
    });
    try {
      const task = await short.create({ name: "sleep", params: { seconds: 7 } });
      await short.startPool({ slots: 1 });
      const done = await short.waitForStatus(task.id, ["succeeded", "failed"], 10_000);
      expect(done.status).toBe("succeeded");
      expect(await short.runs(task.id)).toMatchObject([{ attempt: 1, status: "succeeded" }]);
    } finally {
      await short.close();
    }
  });
});

describe("progress and shutdown", () => {
  it("stores the latest progress and emits task.progress at most once a second", async () => {
    const task = await h.create({ name: "sleep", params: { seconds: 2.4 } });
    const pool = await h.startPool({ slots: 1, maintenance: false });
    const done = await h.waitForStatus(task.id, ["succeeded"], 8000);
    await pool.stop();
    expect(done.progress).toEqual({ percent: 100, message: "step 10 of 10" });
    const progress = await h.database.db.rows<{ occurred_at: Date; data: { progress: { percent: number } } }>(
      "SELECT occurred_at, data FROM task_events WHERE task_id = $1 AND type = 'task.progress' ORDER BY id",
      [task.id],
    );
    // Ten reports in 2.4 s: at most three events.
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.length).toBeLessThanOrEqual(3);
    for (let i = 1; i < progress.length; i++) {
      expect(
        progress[i]!.occurred_at.getTime() - progress[i - 1]!.occurred_at.getTime(),
      ).toBeGreaterThanOrEqual(950);
    }
  });

  it("a stopping pool hands running tasks back to the queue with nothing half-written", async () => {
    const task = await h.create({ name: "sleep", params: { seconds: 30 } });
    const pool = await h.startPool({ slots: 1, maintenance: false, stopGraceMs: 100 });
    await h.waitForStatus(task.id, ["running"]);
    await pool.stop();
    expect(await h.task(task.id)).toMatchObject({
      status: "queued",
      attempt: 1,
      infra_retries: 1,
      lease_owner: null,
    });
    expect(await h.runs(task.id)).toMatchObject([
      { status: "lost", error: "worker shut down during the attempt" },
    ]);
    expect(pool.active).toBe(0);
    await h.database.db.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1", [
      task.id,
    ]);
  });
});
