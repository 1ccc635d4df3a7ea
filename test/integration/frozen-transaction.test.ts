import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Database } from "../../functions/adapters/postgres/database.js";
import { DatabaseUnavailable } from "../../functions/core/errors.js";
import { createEngineHarness, type EngineHarness } from "../helpers/engine.js";

// A TME frozen (SIGSTOP) between two statements of a transaction keeps its session open and
// its row locks held. Here the "frozen" worker is a second pool that locks a running task's row
// and then sends nothing: what the server sees of a stopped process.
const LEASE_SECONDS = 3;
let h: EngineHarness;

beforeAll(async () => {
  h = await createEngineHarness({
    app: { worker: { lease_seconds: LEASE_SECONDS, heartbeat_seconds: 1, kill_grace_seconds: 0.5 } },
  });
});
afterAll(async () => {
  await h.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Claims a fresh task for "frozen-worker" and holds its row lock in a transaction that goes quiet. */
async function frozenHolder(db: Database, quietMs: number) {
  const task = await h.create({ name: "noop" });
  const claimed = await h.app.taskQueue.claim(task.id, 1, "frozen-worker");
  expect("claimed" in claimed).toBe(true);
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const held = db.transaction(async (tx) => {
    await tx.query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", [task.id]);
    locked();
    await sleep(quietMs);
    await tx.query("SELECT 1");
  });
  // Settled later; a rejection is the point of one of the cases.
  held.catch(() => {});
  await isLocked;
  return { task, held };
}

describe("a worker frozen inside a transaction", () => {
  it("without a limit its lock outlives its lease: the reaper passes the task by", async () => {
    const db = new Database({ connectionString: h.database.url, max: 1 });
    try {
      const { task, held } = await frozenHolder(db, (LEASE_SECONDS + 1.5) * 1000);
      await sleep((LEASE_SECONDS + 0.5) * 1000);
      const reaped = await h.app.taskQueue.reapExpired();
      expect(reaped.requeued).toBe(0);
      expect((await h.task(task.id)).status).toBe("running");
      await held;
      // Once the holder commits, the same pass takes it back.
      expect((await h.app.taskQueue.reapExpired()).requeued).toBe(1);
    } finally {
      await db.close();
    }
  }, 20_000);

  it("with idleInTransactionTimeoutMillis the server ends the session: the lease's end takes the task back, and the frozen side gets DatabaseUnavailable", async () => {
    const db = new Database({
      connectionString: h.database.url,
      max: 1,
      idleInTransactionTimeoutMillis: 500,
    });
    try {
      const { task, held } = await frozenHolder(db, (LEASE_SECONDS + 1.5) * 1000);
      await sleep((LEASE_SECONDS + 0.5) * 1000);
      const reaped = await h.app.taskQueue.reapExpired();
      expect(reaped.requeued).toBe(1);
      const after = await h.task(task.id);
      expect(after.status).toBe("queued");
      expect(after.lease_owner).toBeNull();
      await expect(held).rejects.toBeInstanceOf(DatabaseUnavailable);
      // The pool replaced the ended session: the next call works.
      expect((await db.rows<{ one: number }>("SELECT 1 AS one"))[0]!.one).toBe(1);
    } finally {
      await db.close();
    }
  }, 20_000);
});
