import { beforeAll, describe, expect, it } from "vitest";
import { withTestApp } from "../helpers/test-app.js";

// The disk-full fault test found a task row for a request that was not answered 201: the audit
// row was written after the create had committed, and on a full disk that write failed. Here the
// audit write fails the way a full disk fails it (SQLSTATE 53100), on purpose.
let original: string;

const t = withTestApp();
beforeAll(async () => {
  original = (
    await t.app.db.rows<{ def: string }>(
      "SELECT pg_get_functiondef('audit_append(jsonb)'::regprocedure) AS def",
    )
  )[0]!.def;
});

const failAudit = () =>
  t.app.db.query(`CREATE OR REPLACE FUNCTION audit_append(entries jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = '53100'; END $$`);
const countTasks = async (name: string) =>
  (await t.app.db.rows<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE name = $1", [name]))[0]!.n;

describe("a create whose audit row cannot be written", () => {
  it("commits nothing and answers 503 database_storage_full, with or without an Idempotency-Key; once the audit can be written, the create and its audit row commit together", async () => {
    await failAudit();
    try {
      const plain = await t.request("POST", "/task/create", {
        body: { name: "noop", labels: { case: "plain" } },
      });
      expect(plain.status).toBe(503);
      expect(plain.body.error.code).toBe("database_storage_full");
      const keyed = await t.request("POST", "/task/create", {
        body: { name: "noop", labels: { case: "keyed" } },
        headers: { "idempotency-key": "audit-commit-1" },
      });
      expect(keyed.status).toBe(503);
      expect(await countTasks("noop")).toBe(0);
    } finally {
      await t.app.db.query(original);
    }

    const created = await t.request("POST", "/task/create", {
      body: { name: "noop" },
      headers: { "x-request-id": "req-audit-commit" },
    });
    expect(created.status).toBe(201);
    expect(await countTasks("noop")).toBe(1);
    const rows = await t.app.db.rows<{ target: string; action: string; status: number }>(
      "SELECT target, action, status FROM audit_log WHERE request_id = 'req-audit-commit'",
    );
    expect(rows).toEqual([{ target: created.body.id, action: "task.create", status: 201 }]);
  });
});
