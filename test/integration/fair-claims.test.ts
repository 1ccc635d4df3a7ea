import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { typeLockKey } from "../../functions/adapters/postgres/queue/queue-sql.js";
import { PostgresTaskQueue } from "../../functions/adapters/postgres/task-queue-repository.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { insertTask } from "../helpers/tasks.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Claims take turns between namespaces at one priority: a namespace's turn is its task's place in
 * its own line plus the slots it holds (queue-sql.ts fairLine), so one namespace's burst does not
 * hold another's tasks behind it. Priority still comes first, whatever the namespace.
 */

let database: TestDatabase;
let queue: PostgresTaskQueue;

beforeAll(async () => {
  database = await createTestDatabase();
  queue = new PostgresTaskQueue(database.db, {
    limitOf: () => undefined,
    leaseSeconds: 60,
    outputTailBytes: 1024,
    maxInfraRetries: 5,
  });
});
afterAll(async () => {
  await database.drop();
});
beforeEach(async () => {
  await database.db.query("TRUNCATE tasks, task_runs, task_events, outbox, task_type_pauses CASCADE");
});

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);

/** `count` queued tasks of a namespace, the first `from` minutes old and each a minute younger. */
async function burst(namespace: string, count: number, from: number, priority = 5): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++)
    ids.push(await insertTask(database.db, { namespace, priority, run_at: minutesAgo(from - i) }));
  return ids;
}

describe("fair claims between namespaces", () => {
  it("a batch alternates the namespaces' oldest, instead of taking one namespace's burst first", async () => {
    const busy = await burst("busy", 6, 60);
    const quiet = await burst("quiet", 2, 10);
    const batch = await queue.claimBatch("w1", 5);
    expect(batch.tasks.map((t) => t.id)).toEqual([busy[0], quiet[0], busy[1], quiet[1], busy[2]]);
  });

  it("gives the next slot to the namespace holding the fewest, even with a younger task", async () => {
    const busy = await burst("busy", 6, 60);
    const first = await queue.claimBatch("w1", 3);
    expect(first.tasks.map((t) => t.id)).toEqual(busy.slice(0, 3));
    // busy holds 3 slots; a task of quiet created now goes before busy's older fourth.
    const [late] = await burst("quiet", 1, 0);
    const next = await queue.claimBatch("w1", 2);
    expect(next.tasks.map((t) => t.id)).toEqual([late, busy[3]]);
  });

  it("still starts higher priorities first, whatever their namespace", async () => {
    await burst("quiet", 2, 30, 5);
    const [urgent] = await burst("busy", 1, 1, 9);
    const batch = await queue.claimBatch("w1", 1);
    expect(batch.tasks.map((t) => t.id)).toEqual([urgent]);
  });

  it("with one namespace, claims in plain claim order", async () => {
    const older = await burst("default", 3, 30, 5);
    const [high] = await burst("default", 1, 1, 7);
    const batch = await queue.claimBatch("w1", 4);
    expect(batch.tasks.map((t) => t.id)).toEqual([high, ...older]);
  });

  it("re-signals stranded tasks (the cloud's safety net) from the front of the fair line", async () => {
    const busy = await burst("busy", 3, 60);
    const quiet = await burst("quiet", 1, 30);
    expect(await queue.redispatchStranded(60, 2)).toBe(2);
    const { rows } = await database.db.query<{ task_id: string }>(
      "SELECT payload->>'task_id' AS task_id FROM outbox WHERE type = 'queue.dispatch' ORDER BY id",
    );
    expect(rows.map((r) => r.task_id)).toEqual([busy[0], quiet[0]]);
    // Signalled just now: not stranded again until the threshold passes.
    expect(await queue.redispatchStranded(60, 10)).toBe(2);
    expect(await queue.redispatchStranded(60, 10)).toBe(0);
  });

  describe("two claimers at once", () => {
    /**
     * Claimer A's claim is held open between its candidates and its claim: its candidates include
     * a task of a limited type whose lock the test holds (claim.ts lockTypes). Whatever A locked
     * meanwhile, claimer B must not find it.
     */
    async function withClaimHeldOpen(run: () => Promise<void>): Promise<void> {
      const limitedQueue = new PostgresTaskQueue(database.db, {
        limitOf: (name) => (name === "limited" ? 1 : undefined),
        leaseSeconds: 60,
        outputTailBytes: 1024,
        maxInfraRetries: 5,
      });
      const blocker = new pg.Client({ connectionString: database.url });
      await blocker.connect();
      try {
        await blocker.query(`SELECT pg_advisory_lock(${typeLockKey("$1")})`, ["limited"]);
        const held = limitedQueue.claimBatch("wA", 1);
        // A is waiting for the type's lock once its candidates are locked.
        await waitFor(
          "claimer A to wait for the limited type's lock",
          async () => {
            const { rows } = await database.db.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            );
            return rows[0]!.n === 1 ? true : undefined;
          },
          10_000,
          20,
        );
        await run();
        await blocker.query("SELECT pg_advisory_unlock_all()");
        await held;
      } finally {
        await blocker.end();
      }
    }

    /** A queued task of the limited type, first of the line (priority 9, an hour and a half old). */
    async function limitedFirst(): Promise<string> {
      const [id] = await burst("first", 1, 90, 9);
      await database.db.query("UPDATE tasks SET name = 'limited' WHERE id = $1", [id]);
      return id!;
    }

    it("a claim locks only the tasks it keeps: the heads of the other namespaces stay claimable", async () => {
      const limited = await limitedFirst();
      const others = [await burst("n1", 1, 60), await burst("n2", 1, 50), await burst("n3", 1, 40)].flat();
      await withClaimHeldOpen(async () => {
        // A (one task) locked the first of the line, the limited task, and nothing else.
        const b = await queue.claimBatch("wB", 3);
        expect(b.tasks.map((t) => t.id)).toEqual(others);
      });
      const { rows } = await database.db.query<{ lease_owner: string }>(
        "SELECT lease_owner FROM tasks WHERE id = $1",
        [limited],
      );
      expect(rows[0]!.lease_owner).toBe("wA");
    });

    it("a second claimer never takes a lower priority while a higher one is left unclaimed", async () => {
      await limitedFirst();
      const [high] = await burst("second", 1, 30, 9);
      await burst("second", 1, 20, 8);
      await withClaimHeldOpen(async () => {
        const b = await queue.claimBatch("wB", 1);
        expect(b.tasks.map((t) => t.id)).toEqual([high]);
      });
    });
  });
});
