import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Database, PLAN_PER_CALL } from "../../functions/adapters/postgres/database.js";
import { SORT_FREE } from "../../functions/adapters/postgres/queue/queue-sql.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
  await database.db.query("CREATE TABLE prepared_probe (id int PRIMARY KEY, label text)");
  await database.db.query("INSERT INTO prepared_probe VALUES (1, 'one'), (2, 'two')");
});
afterAll(async () => {
  await database.drop();
});

/** A Database of one connection (so every statement lands on it), closed after fn. */
async function onOneConnection(
  fn: (db: Database) => Promise<void>,
  options: { preparedStatements?: boolean } = {},
) {
  const db = new Database({ connectionString: database.url, max: 1, ...options });
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

/** The statements prepared on the connection of a transaction, as the server lists them. */
const preparedOn = (db: Database, run: (tx: { query: Database["query"] }) => Promise<unknown>) =>
  db.transaction(async (tx) => {
    await run(tx as { query: Database["query"] });
    const { rows } = await tx.query<{ statement: string }>(
      "SELECT statement FROM pg_prepared_statements WHERE statement LIKE $1 ORDER BY statement",
      ["%prepared_probe%"],
    );
    return rows.map((r) => r.statement);
  });

describe("prepared statements", () => {
  it("prepares a statement with parameters once per connection and reuses it; one without parameters is not prepared", async () => {
    await onOneConnection(async (db) => {
      const statements = await preparedOn(db, async (tx) => {
        for (const id of [1, 2, 1]) await tx.query("SELECT label FROM prepared_probe WHERE id = $1", [id]);
        await tx.query("SELECT count(*) FROM prepared_probe");
      });
      expect(statements).toEqual(["SELECT label FROM prepared_probe WHERE id = $1"]);
      // The pool's own queries (outside a transaction) land on the same connection here (max 1).
      expect((await db.rows("SELECT label FROM prepared_probe WHERE id = $1", [2]))[0]).toEqual({
        label: "two",
      });
    });
  });

  it("gives a statement run under transaction settings (SORT_FREE) a plan of its own", async () => {
    await onOneConnection(async (db) => {
      const text = "SELECT id FROM prepared_probe WHERE id > $1 ORDER BY label";
      // One connection (max 1): both transactions prepare on it.
      await db.transaction((tx) => tx.query(text, [0]));
      await db.transaction((tx) => tx.query(text, [0]), { settings: SORT_FREE });
      const { rows } = await db.transaction((tx) =>
        tx.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1",
          [text],
        ),
      );
      expect(rows[0]!.n).toBe(2);
    });
  });

  it("keeps answering when a migration changes the columns a prepared statement reads with *", async () => {
    await onOneConnection(async (db) => {
      const read = () => db.rows<Record<string, unknown>>("SELECT * FROM prepared_probe WHERE id = $1", [1]);
      const readInTransaction = () =>
        db.transaction((tx) => tx.query("SELECT * FROM prepared_probe WHERE id = $1 AND true", [1]));
      expect(await read()).toEqual([{ id: 1, label: "one" }]);
      await readInTransaction();
      await database.db.query("ALTER TABLE prepared_probe ADD COLUMN note text DEFAULT 'added'");
      expect(await read()).toEqual([{ id: 1, label: "one", note: "added" }]);
      expect((await readInTransaction()).rows).toEqual([{ id: 1, label: "one", note: "added" }]);
    });
  });

  it("prepares nothing when turned off (behind RDS Proxy)", async () => {
    await onOneConnection(
      async (db) => {
        const statements = await preparedOn(db, async (tx) => {
          await tx.query("SELECT label FROM prepared_probe WHERE id = $1", [1]);
        });
        expect(statements).toEqual([]);
      },
      { preparedStatements: false },
    );
  });

  it("plans a statement marked PLAN_PER_CALL at every call, unprepared", async () => {
    await onOneConnection(async (db) => {
      const statements = await preparedOn(db, async (tx) => {
        await tx.query(`SELECT label FROM prepared_probe WHERE label = $1 ${PLAN_PER_CALL}`, ["one"]);
      });
      expect(statements).toEqual([]);
    });
  });

  it("prepares a statement again when the connection no longer holds it (26000)", async () => {
    await onOneConnection(async (db) => {
      const text = "SELECT label FROM prepared_probe WHERE id = $1 AND label IS NOT NULL";
      expect(await db.rows(text, [1])).toEqual([{ label: "one" }]);
      // What a pooler in transaction mode does to a session's statements: the server forgets them.
      await db.query("DEALLOCATE ALL");
      expect(await db.rows(text, [2])).toEqual([{ label: "two" }]);
      expect((await db.transaction((tx) => tx.query(text, [1]))).rows).toEqual([{ label: "one" }]);
    });
  });
});
