import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { migrate, readMigrations } from "../../functions/adapters/postgres/migrator.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const d of databases) await d.drop();
});

async function emptyDatabase() {
  const d = await createTestDatabase({ empty: true });
  databases.push(d);
  return d;
}

describe("migrations", () => {
  it("apply every numbered file once and record them", async () => {
    const { url, db } = await emptyDatabase();
    const files = readMigrations();
    const first = await migrate(url);
    expect(first.applied).toEqual(files.map((m) => `${String(m.id).padStart(4, "0")}_${m.name}`));
    const recorded = await db.rows<{ id: number }>("SELECT id FROM tme_migrations ORDER BY id");
    expect(recorded.map((r) => r.id)).toEqual(files.map((m) => m.id));
    for (const table of [
      "tasks",
      "task_runs",
      "task_events",
      "schedules",
      "subscriptions",
      "deliveries",
      "outbox",
      "api_keys",
      "audit_log",
    ]) {
      const { rows } = await db.query("SELECT to_regclass($1) AS t", [table]);
      expect(rows[0]!.t, table).toBe(table);
    }
  });

  it("are a no-op the second time", async () => {
    const { url } = await emptyDatabase();
    await migrate(url);
    const second = await migrate(url);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toBe(readMigrations().length);
  });

  it("are safe from several processes at once: each file applied exactly once", async () => {
    const { url, db } = await emptyDatabase();
    const results = await Promise.all([migrate(url), migrate(url), migrate(url), migrate(url)]);
    const appliedCounts = results.map((r) => r.applied.length).sort();
    expect(appliedCounts).toEqual([0, 0, 0, readMigrations().length]);
    const { rows } = await db.query("SELECT count(*) AS n FROM tme_migrations");
    expect(rows[0]!.n).toBe(readMigrations().length);
  });

  it("keep the audit log append-only", async () => {
    const { url, db } = await emptyDatabase();
    await migrate(url);
    await db.query("INSERT INTO audit_log (actor, namespace, action) VALUES ('k', 'default', 'x')");
    await expect(db.query("UPDATE audit_log SET action = 'y'")).rejects.toThrow(/append-only/);
    await expect(db.query("DELETE FROM audit_log")).rejects.toThrow(/append-only/);
    await expect(db.query("TRUNCATE audit_log")).rejects.toThrow(/append-only/);
  });

  it("refuse a running task without a lease", async () => {
    const { url, db } = await emptyDatabase();
    await migrate(url);
    await expect(
      db.query(
        "INSERT INTO tasks (id, name, handler, status, timeout_seconds) VALUES ('t1', 'n', 'shell', 'running', 10)",
      ),
    ).rejects.toMatchObject({ code: "23514" } satisfies Partial<pg.DatabaseError>);
  });
});
