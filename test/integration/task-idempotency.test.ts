import { describe, expect, it } from "vitest";
import { withTestApp } from "../helpers/test-app.js";

const t = withTestApp();

describe("Idempotency-Key on POST /task/create", () => {
  it("creates exactly one task from 50 parallel requests with one key, all answering its id", async () => {
    const body = { name: "noop", description: "once", labels: { run: "idem-50" } };
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        t.request("POST", "/task/create", { body, headers: { "idempotency-key": "key-50" } }),
      ),
    );
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(49);
    const ids = new Set(responses.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    for (const r of responses.filter((r) => r.status === 200)) {
      expect(r.headers.get("idempotent-replayed")).toBe("true");
    }
    const rows = await t.app.db.rows("SELECT id FROM tasks WHERE labels @> $1", [
      JSON.stringify({ run: "idem-50" }),
    ]);
    expect(rows).toEqual([{ id: [...ids][0] }]);
    const events = await t.app.db.rows("SELECT type FROM task_events WHERE task_id = $1", [[...ids][0]]);
    expect(events).toEqual([{ type: "task.created" }]);
  });

  it("replays with 200, Idempotent-Replayed and the same task; another body with the key is 409", async () => {
    const headers = { "idempotency-key": "key-replay" };
    const first = await t.request("POST", "/task/create", { body: { name: "noop", priority: 3 }, headers });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const replay = await t.request("POST", "/task/create", { body: { priority: 3, name: "noop" }, headers });
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(first.body);
    const other = await t.request("POST", "/task/create", { body: { name: "noop", priority: 4 }, headers });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("idempotency_key_reused");
  });

  it("keeps keys per namespace and leaves no task behind when the create fails", async () => {
    const headers = { "idempotency-key": "key-fail" };
    const failed = await t.request("POST", "/task/create", { body: { name: "no_plugin_here" }, headers });
    expect(failed.status).toBe(422);
    const ok = await t.request("POST", "/task/create", { body: { name: "noop" }, headers });
    expect(ok.status).toBe(201);
    const otherNs = await t.request("POST", "/task/create?namespace=elsewhere", {
      body: { name: "noop" },
      headers,
    });
    expect(otherNs.status).toBe(201);
    expect(otherNs.body.id).not.toBe(ok.body.id);
  });
});
