import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
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
    await db.query(`SELECT audit_append('[{"actor": "k", "namespace": "default", "action": "x"}]')`);
    await expect(db.query("UPDATE audit_log SET action = 'y'")).rejects.toThrow(/append-only/);
    await expect(db.query("DELETE FROM audit_log")).rejects.toThrow(/append-only/);
    await expect(db.query("TRUNCATE audit_log")).rejects.toThrow(/append-only/);
  });

  it("0035 and 0036 clean what earlier versions stored: secrets in idempotency records, unchained audit rows", async () => {
    const { url, db } = await emptyDatabase();
    const dir = mkdtempSync(path.join(os.tmpdir(), "tme-migrations-"));
    for (const m of readMigrations().filter((m) => m.id < 35)) {
      writeFileSync(path.join(dir, `${String(m.id).padStart(4, "0")}_${m.name}.sql`), m.sql);
    }
    await migrate(url, dir);
    // As TME stored them before: a subscription's create response with its signing secret,
    // an expired record, and audit rows with no chain.
    await db.query(
      `INSERT INTO idempotency_keys (namespace, key, route, request_hash, response_status, response_body, created_at) VALUES
       ('default', 'k1', 'POST /events', 'h', 201, '{"id": "sub_1", "signing_secret": "whsec_planted_secret"}', now()),
       ('default', 'k2', 'POST /task/create', 'h', 201, '{"id": "tsk_1"}', now() - interval '25 hours')`,
    );
    await db.query(
      `INSERT INTO audit_log (actor, namespace, action, target) VALUES ('k', 'default', 'task.create', 'tsk_1'),
       ('k', 'default', 'task.cancel', 'tsk_1')`,
    );
    await migrate(url);
    const kept = await db.rows<{ key: string; response_body: Record<string, unknown> }>(
      "SELECT key, response_body FROM idempotency_keys ORDER BY key",
    );
    expect(kept).toEqual([
      {
        key: "k1",
        response_body: {
          id: "sub_1",
          signing_secret: null,
          signing_secret_note: expect.stringContaining("shown once"),
        },
      },
    ]);
    expect(JSON.stringify(await db.rows("SELECT * FROM idempotency_keys"))).not.toContain(
      "whsec_planted_secret",
    );
    const chained = await db.rows<{ seq: number; prev_hash: Buffer | null; hash: Buffer }>(
      "SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq",
    );
    expect(chained.map((r) => r.seq)).toEqual([1, 2]);
    expect(chained[0]!.prev_hash).toBeNull();
    expect(chained[1]!.prev_hash).toEqual(chained[0]!.hash);
    rmSync(dir, { recursive: true, force: true });
  });

  it("0030 gives commands:run to keys that held tasks:write (they could run commands), not to schedules:write alone", async () => {
    const { url, db } = await emptyDatabase();
    const dir = mkdtempSync(path.join(os.tmpdir(), "tme-migrations-"));
    for (const m of readMigrations().filter((m) => m.id < 30)) {
      writeFileSync(path.join(dir, `${String(m.id).padStart(4, "0")}_${m.name}.sql`), m.sql);
    }
    await migrate(url, dir);
    await db.query(
      `INSERT INTO api_keys (id, name, scopes, key_hash, prefix) VALUES
       ('key_w', 'w', '{tasks:read,tasks:write}', '\\x01', 'p1'),
       ('key_s', 's', '{schedules:write}', '\\x02', 'p2'),
       ('key_a', 'a', '{admin}', '\\x03', 'p3')`,
    );
    await migrate(url);
    const keys = await db.rows<{ id: string; scopes: string[] }>(
      "SELECT id, scopes FROM api_keys ORDER BY id",
    );
    expect(keys).toEqual([
      { id: "key_a", scopes: ["admin"] },
      { id: "key_s", scopes: ["schedules:write"] },
      { id: "key_w", scopes: ["tasks:read", "tasks:write", "commands:run"] },
    ]);
    rmSync(dir, { recursive: true, force: true });
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
