import { describe, expect, it } from "vitest";
import { createTestApp, withTestApp } from "../helpers/test-app.js";

const t = withTestApp();

const create = (body: unknown, key?: string) => t.request("POST", "/schedule", { body, key });

async function outboxOf(scheduleId: string) {
  return t.app.db.rows<{ type: string; payload: any }>(
    `SELECT type, payload FROM outbox
     WHERE payload->>'schedule_id' = $1 OR payload->'data'->>'schedule_id' = $1 ORDER BY id`,
    [scheduleId],
  );
}

describe("POST /schedule", () => {
  it("creates an interval schedule: 201 with schedule_id and next_run_at one interval after creation", async () => {
    const res = await create({ name: "noop_hourly", interval: 3600 });
    expect(res.status).toBe(201);
    const s = res.body;
    expect(s).toMatchObject({
      schedule_id: s.id,
      name: "noop_hourly",
      interval: 3600,
      cron: null,
      timezone: "UTC",
      overlap: "skip",
      enabled: true,
      state: "active",
      fired_count: 0,
    });
    expect(s.id).toMatch(/^sch_/);
    expect(Date.parse(s.next_run_at) - Date.parse(s.created_at)).toBe(3600_000);
    const outbox = await outboxOf(s.id);
    expect(outbox).toEqual([
      {
        type: "scheduler.sync",
        payload: {
          schedule_id: s.id,
          namespace: "default",
          state: "enabled",
          interval_seconds: 3600,
          cron: null,
          timezone: "UTC",
          start_at: null,
          end_at: null,
        },
      },
    ]);
  });

  it("creates a cron schedule in a time zone with a full task template", async () => {
    const res = await create({
      name: "noop_nightly_report",
      cron: "30 2 * * *",
      timezone: "Europe/Berlin",
      command: "echo report",
      description: "nightly",
      priority: 7,
      timeout_seconds: 60,
      max_attempts: 2,
      labels: { team: "ops" },
      overlap: "queue",
      start_at: "2030-01-01T00:00:00Z",
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      cron: "30 2 * * *",
      timezone: "Europe/Berlin",
      command: "echo report",
      priority: 7,
      labels: { team: "ops" },
      overlap: "queue",
      // 02:30 CET on the first day of 2030
      next_run_at: "2030-01-01T01:30:00.000Z",
    });
  });

  it.each([
    [{ name: "noop", interval: 0 }, "interval", /must be >= 1/],
    [{ name: "noop", interval: 1.5 }, "interval", /integer/],
    [{ name: "noop", interval: 60, cron: "* * * * *" }, "interval", /exactly one/],
    [{ name: "noop" }, "interval", /exactly one/],
    [{ name: "noop", cron: "61 * * * *" }, "cron", /Invalid value for minute: 61/],
    [{ name: "noop", cron: "0 0 * * * *" }, "cron", /5 fields/],
    [{ name: "noop", cron: "* * * * *", timezone: "Europe/Atlantis" }, "timezone", /unknown time zone/],
    [
      { name: "noop", interval: 60, start_at: "2030-02-01T00:00:00Z", end_at: "2030-01-01T00:00:00Z" },
      "end_at",
      /after start_at/,
    ],
    [{ name: "noop", interval: 60, start_at: "tomorrow" }, "start_at", /ISO 8601/],
    [{ name: "noop", interval: 60, every: 5 }, "every", /every/],
    [{ name: "noop", interval: 60, priority: 12 }, "priority", /9/],
    // Beyond the interval column (a Postgres integer): was a 500.
    [{ name: "noop", interval: 1e12 }, "interval", /<= 2147483647/],
    // Timelines with no occurrence: were stored as schedules "finished" the moment they existed.
    [
      { name: "noop", cron: "0 0 31 2 *" },
      "cron",
      /matches no date after now: the schedule would never fire/,
    ],
    [{ name: "noop", cron: "0 0 * * *", start_at: "9999-12-31T00:00:01Z" }, "cron", /after start_at/],
    [
      { name: "noop", interval: 3600, end_at: new Date(Date.now() + 600_000).toISOString() },
      "end_at",
      /before the first occurrence \(.*\): the schedule would never fire/,
    ],
    // The template obeys POST /task/create's limits: its tasks never bypass them.
    [{ name: "noop", interval: 60, labels: { "bad key!": "v" } }, "labels.bad key!", /./],
    [{ name: "x", interval: 60, command: "a".repeat(8193) }, "command", /8192/],
    [{ name: "noop", interval: 60, start_at: "0001-01-01T00:00:00Z" }, "start_at", /1970 and 9999/],
  ])("refuses %j with 400 naming the field", async (body, path, message) => {
    const res = await create(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_error");
    expect(res.body.error.details).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  it("refuses a task template that cannot make a task (422), as POST /task/create does", async () => {
    const unmapped = await create({ name: "no_such_plugin", interval: 60 });
    expect(unmapped.status).toBe(422);
    expect(unmapped.body.error.details).toEqual([{ path: "command", message: expect.any(String) }]);
    const badParams = await create({ name: "sleep", interval: 60, params: { seconds: "ten" } });
    expect(badParams.status).toBe(422);
    expect(badParams.body.error.details[0].path).toBe("params.seconds");
  });

  it("replays an Idempotency-Key: same schedule, 200, one row", async () => {
    const headers = { "idempotency-key": "sched-once" };
    const first = await t.request("POST", "/schedule", {
      body: { name: "noop_idem", interval: 60 },
      headers,
    });
    const again = await t.request("POST", "/schedule", {
      body: { name: "noop_idem", interval: 60 },
      headers,
    });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body.id).toBe(first.body.id);
    const rows = await t.app.db.rows("SELECT id FROM schedules WHERE name = 'noop_idem'");
    expect(rows).toHaveLength(1);
  });
});

describe("scopes and namespaces", () => {
  it("needs schedules:write to create; tasks:read or schedules:write to read", async () => {
    const reader = await t.keyWith(["tasks:read"]);
    const writer = await t.keyWith(["schedules:write"]);
    const taskWriter = await t.keyWith(["tasks:write"]);
    expect((await create({ name: "noop", interval: 60 }, reader)).status).toBe(403);
    const made = await create({ name: "noop", interval: 60 }, writer);
    expect(made.status).toBe(201);
    expect((await t.request("GET", `/schedule/${made.body.id}`, { key: reader })).status).toBe(200);
    expect((await t.request("GET", `/schedule/${made.body.id}`, { key: writer })).status).toBe(200);
    const refused = await t.request("GET", "/schedule", { key: taskWriter });
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toContain("tasks:read or schedules:write");
  });

  it("hides another namespace's schedule (404)", async () => {
    const other = await t.keyWith(["schedules:write"], "team-b");
    const made = await create({ name: "noop", interval: 60 }, other);
    expect(made.body.namespace).toBe("team-b");
    const mine = await t.keyWith(["schedules:write"]);
    expect((await t.request("GET", `/schedule/${made.body.id}`, { key: mine })).status).toBe(404);
    expect((await t.request("POST", `/schedule/${made.body.id}/pause`, { key: mine })).status).toBe(404);
  });
});

describe("GET /schedule", () => {
  it("lists newest first in pages linked by X-Next-Cursor", async () => {
    const ns = await t.keyWith(["schedules:write"], "paging");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await create({ name: "noop", interval: 60 + i }, ns)).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : "?limit=2";
      const page = await t.request("GET", `/schedule${query}`, { key: ns });
      expect(page.status).toBe(200);
      seen.push(...page.body.map((s: { id: string }) => s.id));
      cursor = page.headers.get("x-next-cursor");
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const bad = await t.request("GET", "/schedule?cursor=nonsense", { key: ns });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: "validation_error", details: [{ path: "query.cursor" }] });
  });

  it("pages through schedules created within one millisecond without gaps or duplicates", async () => {
    const ns = await t.keyWith(["schedules:write"], "same-millisecond");
    // 30 rows within one millisecond: ten at the very same microsecond, the rest microseconds apart.
    const inserted = await t.app.db.rows<{ id: string }>(
      `INSERT INTO schedules (id, namespace, name, interval_seconds, next_run_at, created_at, updated_at)
       SELECT 'sch_ms' || lpad(i::text, 3, '0'), 'same-millisecond', 'noop', 60, now() + interval '1 hour',
              '2026-03-01T12:00:00.123Z'::timestamptz + (CASE WHEN i <= 10 THEN 0 ELSE i END) * interval '1 microsecond',
              now()
       FROM generate_series(1, 30) AS i RETURNING id`,
    );
    for (const limit of [1, 4, 7, 30]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 40; pages++) {
        const query: string = cursor ? `?limit=${limit}&cursor=${cursor}` : `?limit=${limit}`;
        const page = await t.request("GET", `/schedule${query}`, { key: ns });
        expect(page.status).toBe(200);
        seen.push(...page.body.map((s: { id: string }) => s.id));
        cursor = page.headers.get("x-next-cursor");
        if (!cursor) break;
      }
      expect(cursor).toBeNull();
      // Newest first: the later microseconds, then the ten tied rows by id, descending.
      const expected = inserted
        .map((r) => r.id)
        .sort()
        .reverse();
      expect(seen).toEqual(expected);
    }
  });
});

describe("PATCH /schedule/{id}", () => {
  it("changes the timing and restarts the timeline from now", async () => {
    const made = (await create({ name: "noop", interval: 3600 })).body;
    const before = Date.now();
    const res = await t.request("PATCH", `/schedule/${made.id}`, {
      body: { cron: "0 9 * * 1-5", timezone: "America/New_York", priority: 8 },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      interval: null,
      cron: "0 9 * * 1-5",
      timezone: "America/New_York",
      priority: 8,
    });
    expect(Date.parse(res.body.next_run_at)).toBeGreaterThan(before);
    expect(new Date(res.body.next_run_at).getUTCMinutes()).toBe(0);
    const syncs = (await outboxOf(made.id)).filter((o) => o.type === "scheduler.sync");
    expect(syncs.at(-1)?.payload).toMatchObject({ cron: "0 9 * * 1-5", timezone: "America/New_York" });
  });

  it("refuses both timings, a bad merge, and unknown fields", async () => {
    const made = (await create({ name: "noop", interval: 60 })).body;
    const both = await t.request("PATCH", `/schedule/${made.id}`, {
      body: { interval: 5, cron: "* * * * *" },
    });
    expect(both.status).toBe(400);
    const tzOnInterval = await t.request("PATCH", `/schedule/${made.id}`, {
      body: { timezone: "Europe/Paris" },
    });
    expect(tzOnInterval.status).toBe(400);
    const typo = await t.request("PATCH", `/schedule/${made.id}`, { body: { intervall: 5 } });
    expect(typo.status).toBe(400);
    const unmapped = await t.request("PATCH", `/schedule/${made.id}`, { body: { name: "not_a_plugin" } });
    expect(unmapped.status).toBe(422);
    const cron = (await create({ name: "noop", cron: "0 9 * * *", timezone: "Europe/Berlin" })).body;
    const noTiming = await t.request("PATCH", `/schedule/${cron.id}`, { body: { cron: null } });
    expect(noTiming.status).toBe(400);
    expect(noTiming.body.error.details).toEqual([
      { path: "interval", message: "give exactly one of interval and cron" },
    ]);
  });
});

describe("pause, resume, trigger, delete", () => {
  it("pause stops the timeline (schedule.paused); resume restarts it after now (schedule.resumed)", async () => {
    const made = (await create({ name: "noop", interval: 60 })).body;
    const paused = await t.request("POST", `/schedule/${made.id}/pause`);
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ enabled: false, state: "paused", next_run_at: null });
    const resumedAt = Date.now();
    const resumed = await t.request("POST", `/schedule/${made.id}/resume`);
    expect(resumed.body).toMatchObject({ enabled: true, state: "active" });
    const next = Date.parse(resumed.body.next_run_at);
    // Still on the original timeline (created_at + k * 60 s), and the first such instant after now.
    expect((next - Date.parse(made.created_at)) % 60_000).toBe(0);
    expect(next).toBeGreaterThan(resumedAt - 1000);
    expect(next - resumedAt).toBeLessThanOrEqual(60_000);
    const types = (await outboxOf(made.id)).map((o) =>
      o.type === "scheduler.sync" ? `sync:${o.payload.state}` : o.type,
    );
    expect(types).toEqual([
      "sync:enabled",
      "sync:disabled",
      "schedule.paused",
      "sync:enabled",
      "schedule.resumed",
    ]);
  });

  it("trigger fires once now: a task with schedule_id and a schedule.fired event, timeline untouched", async () => {
    const made = (await create({ name: "noop", interval: 3600, labels: { from: "schedule" } })).body;
    const res = await t.request("POST", `/schedule/${made.id}/trigger`);
    expect(res.status).toBe(201);
    expect(res.body.task).toMatchObject({
      schedule_id: made.id,
      name: "noop",
      status: "queued",
      labels: { from: "schedule" },
    });
    const tasks = await t.app.db.rows("SELECT id FROM tasks WHERE schedule_id = $1", [made.id]);
    expect(tasks).toEqual([{ id: res.body.task_id }]);
    const fired = (await outboxOf(made.id)).find((o) => o.type === "schedule.fired");
    expect(fired?.payload.data).toMatchObject({
      schedule_id: made.id,
      task_id: res.body.task_id,
      trigger: "manual",
      missed_count: 0,
    });
    const after = (await t.request("GET", `/schedule/${made.id}`)).body;
    expect(after).toMatchObject({
      next_run_at: made.next_run_at,
      fired_count: 1,
      last_task_id: res.body.task_id,
    });
  });

  it("the actions take no body or {}; a field (a typo, a misplaced option) is 400, not ignored", async () => {
    const made = (await create({ name: "noop", interval: 3600 })).body;
    const typo = await t.request("POST", `/schedule/${made.id}/pause`, { body: { enabled: false } });
    expect(typo.status).toBe(400);
    expect(typo.body.error.code).toBe("validation_error");
    expect((await t.request("GET", `/schedule/${made.id}`)).body.enabled).toBe(true);
    expect((await t.request("POST", `/schedule/${made.id}/pause`, { body: {} })).status).toBe(200);
    expect((await t.request("POST", `/schedule/${made.id}/resume`)).status).toBe(200);
    const withParams = await t.request("POST", `/schedule/${made.id}/trigger`, {
      body: { params: { a: 1 } },
    });
    expect(withParams.status).toBe(400);
    expect(await t.app.db.rows("SELECT id FROM tasks WHERE schedule_id = $1", [made.id])).toEqual([]);
  });

  it("delete answers 204, then 404; the schedule's tasks stay; the sync says absent", async () => {
    const made = (await create({ name: "noop", interval: 3600 })).body;
    const fired = await t.request("POST", `/schedule/${made.id}/trigger`);
    const res = await t.request("DELETE", `/schedule/${made.id}`);
    expect(res.status).toBe(204);
    expect((await t.request("GET", `/schedule/${made.id}`)).status).toBe(404);
    expect((await t.request("DELETE", `/schedule/${made.id}`)).status).toBe(404);
    expect((await t.request("POST", `/schedule/${made.id}/trigger`)).status).toBe(404);
    const tasks = await t.app.db.rows("SELECT id FROM tasks WHERE schedule_id = $1", [made.id]);
    expect(tasks).toEqual([{ id: fired.body.task_id }]);
    const syncs = (await outboxOf(made.id)).filter((o) => o.type === "scheduler.sync");
    expect(syncs.at(-1)?.payload).toEqual({ schedule_id: made.id, namespace: "default", state: "absent" });
    const audit = await t.app.db.rows(
      "SELECT action, outcome, status FROM audit_log WHERE target = $1 ORDER BY seq",
      [made.id],
    );
    // The refused calls are recorded too: who tried what, and the answer.
    expect(audit).toEqual([
      { action: "schedule.create", outcome: "ok", status: 201 },
      { action: "schedule.trigger", outcome: "ok", status: 201 },
      { action: "schedule.delete", outcome: "ok", status: 204 },
      { action: "schedule.delete", outcome: "failed", status: 404 },
      { action: "schedule.trigger", outcome: "failed", status: 404 },
    ]);
  });
});

describe("the cloud runtime", () => {
  it("refuses with 422 what EventBridge Scheduler cannot do, saying why", async () => {
    const cloud = await createTestApp({ env: { TME_RUNTIME: "cloud" } });
    try {
      const fast = await cloud.request("POST", "/schedule", { body: { name: "noop", interval: 30 } });
      expect(fast.status).toBe(422);
      expect(fast.body.error.message).toMatch(/under 60 s.*EventBridge Scheduler.*one minute/);
      const either = await cloud.request("POST", "/schedule", { body: { name: "noop", cron: "0 9 1 * 1" } });
      expect(either.status).toBe(422);
      expect(either.body.error.details[0].path).toBe("cron");
      const fine = await cloud.request("POST", "/schedule", { body: { name: "noop", interval: 300 } });
      expect(fine.status).toBe(201);
    } finally {
      await cloud.close();
    }
  });
});

describe("OpenAPI", () => {
  it("documents the schedule routes from their schemas", async () => {
    const spec = (await t.request("GET", "/openapi.json", { key: null })).body;
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining([
        "/schedule",
        "/schedule/{schedule_id}",
        "/schedule/{schedule_id}/pause",
        "/schedule/{schedule_id}/resume",
        "/schedule/{schedule_id}/trigger",
      ]),
    );
    const body = spec.paths["/schedule"].post.requestBody.content["application/json"].schema;
    expect(body.required).toEqual(["name"]);
    expect(body.additionalProperties).toBe(false);
    expect(Object.keys(body.properties)).toEqual(
      expect.arrayContaining(["interval", "cron", "timezone", "overlap"]),
    );
  });
});
