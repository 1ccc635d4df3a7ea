import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
  await t.db.query("CREATE TABLE lock_order (id int PRIMARY KEY, n int NOT NULL DEFAULT 0)");
  await t.db.query("INSERT INTO lock_order (id) VALUES (1), (2)");
});
afterAll(async () => {
  await t.drop();
});

describe("Database.transaction", () => {
  it("runs again the transaction the server chose as a deadlock's victim, so both writers succeed", async () => {
    // Two transactions lock the same two rows in opposite orders, each waiting at the barrier
    // for the other's first lock: the server must abort one of them (40P01).
    let arrived = 0;
    let open!: () => void;
    const barrier = new Promise<void>((resolve) => (open = resolve));
    let runs = 0;
    const writer = (first: number, second: number) =>
      t.db.transaction(async (tx) => {
        runs++;
        await tx.query("UPDATE lock_order SET n = n + 1 WHERE id = $1", [first]);
        if (++arrived === 2) open();
        await barrier;
        await tx.query("UPDATE lock_order SET n = n + 1 WHERE id = $1", [second]);
      });
    await Promise.all([writer(1, 2), writer(2, 1)]);
    // The victim ran twice; each writer's two increments landed exactly once.
    expect(runs).toBe(3);
    const { rows } = await t.db.query<{ id: number; n: number }>("SELECT id, n FROM lock_order ORDER BY id");
    expect(rows).toEqual([
      { id: 1, n: 2 },
      { id: 2, n: 2 },
    ]);
  });

  it("does not run again a transaction that failed for its own reason", async () => {
    let runs = 0;
    await expect(
      t.db.transaction(async (tx) => {
        runs++;
        await tx.query("INSERT INTO lock_order (id) VALUES (1)");
      }),
    ).rejects.toMatchObject({ code: "23505" });
    expect(runs).toBe(1);
  });
});
