import { describe, expect, it } from "vitest";
import { sendWebhook } from "../../functions/adapters/http/webhook-sender.js";
import { fanOutEvent } from "../../functions/adapters/postgres/delivery-repository.js";
import { evaluateAlerts } from "../../functions/core/alerts/evaluate-alerts.js";
import { newEvent } from "../../functions/core/events/event.js";
import { createTask } from "../../functions/core/tasks/create-task.js";
import { runDueDeliveries } from "../../functions/core/webhooks/deliver-due.js";
import { dispatchRecords, sqsEventOf, toBusEvent } from "../../functions/handlers/webhook-dispatcher.js";
import { startReceiver } from "../helpers/receiver.js";
import { withTestApp } from "../helpers/test-app.js";

// The guard is on here (allow_private_callbacks: false, the default).
const t = withTestApp();

const valid = { event_types: ["task.failed"], callback_url: "http://93.184.216.34/hook" };

describe("POST /events", () => {
  it.each([
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1/",
    "http://[::1]/",
    "http://10.0.0.1/",
    "http://localhost:8000/",
    "http://[::ffff:127.0.0.1]/",
  ])("refuses %s with 422", async (url) => {
    const response = await t.request("POST", "/events", { body: { ...valid, callback_url: url } });
    expect(response.status).toBe(422);
    expect(response.body.error).toMatchObject({ code: "unprocessable", details: [{ path: "callback_url" }] });
  });

  it("refuses decimal, hex and octal IPv4 and IPv4-mapped IPv6 without opening a connection", async () => {
    const r = await startReceiver();
    try {
      for (const host of ["2130706433", "0x7f000001", "0177.0.0.1", "[::ffff:7f00:1]"]) {
        const response = await t.request("POST", "/events", {
          body: { ...valid, callback_url: `http://${host}:${r.port}/` },
        });
        expect(response.status, host).toBe(422);
      }
      expect(r.connections).toBe(0);
    } finally {
      await r.close();
    }
  });

  it.each([
    [{ ...valid, callback_url: "ftp://example.com/" }, "callback_url"],
    [{ ...valid, callback_url: "not a url" }, "callback_url"],
    [{ ...valid, event_types: ["task.exploded"] }, "event_types.0"],
    [{ ...valid, event_types: [] }, "event_types"],
    [{ ...valid, format: "yaml" }, "format"],
    [{ ...valid, auth: { type: "bearer" } }, "auth.token"],
    [{ ...valid, auth: { type: "hmac", secret: "mine" } }, "auth.secret"],
    [{ ...valid, filter: { nme: "x" } }, "filter.nme"],
    [{ ...valid, extra: 1 }, "extra"],
  ])("refuses a bad body with 400 naming the field (%#)", async (body, field) => {
    const response = await t.request("POST", "/events", { body });
    expect(response.status).toBe(400);
    expect(response.body.error.details.map((d: { path: string }) => d.path)).toContain(field);
  });

  it("creates with defaults, hides credentials, and is idempotent with Idempotency-Key", async () => {
    const body = { ...valid, auth: { type: "basic", username: "me", password: "pa55word" } };
    const headers = { "idempotency-key": "sub-1" };
    const first = await t.request("POST", "/events", { body, headers });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      subscription_id: first.body.id,
      format: "json",
      auth: { type: "basic", username: "me" },
      filter: {},
      enabled: true,
    });
    expect(first.text).not.toContain("pa55word");
    const replay = await t.request("POST", "/events", { body, headers });
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body.id).toBe(first.body.id);
    const stored = await t.app.db.rows<{ auth_secret: string }>(
      "SELECT auth_secret FROM subscriptions WHERE id = $1",
      [first.body.id],
    );
    expect(stored[0]!.auth_secret).not.toContain("pa55word");
    expect(JSON.parse(await t.app.secrets.open(stored[0]!.auth_secret))).toEqual({ password: "pa55word" });
  });

  it("requires events:write, and keeps namespaces apart", async () => {
    const reader = await t.keyWith(["tasks:read"]);
    expect((await t.request("POST", "/events", { body: valid, key: reader })).status).toBe(403);
    const other = await t.keyWith(["events:write"], "other");
    const mine = await t.request("POST", "/events", { body: valid });
    expect((await t.request("GET", `/events/${mine.body.id}`, { key: other })).status).toBe(404);
    expect((await t.request("GET", "/events", { key: other })).body).toEqual([]);
  });
});

describe("GET, PATCH, DELETE /events/{id}", () => {
  it("lists with limit and cursor", async () => {
    const ns = await t.keyWith(["events:write"], "paging");
    for (let i = 0; i < 3; i++) await t.request("POST", "/events", { body: valid, key: ns });
    const page1 = await t.request("GET", "/events?limit=2", { key: ns });
    expect(page1.body).toHaveLength(2);
    const cursor = page1.headers.get("x-next-cursor")!;
    const page2 = await t.request("GET", `/events?limit=2&cursor=${cursor}`, { key: ns });
    expect(page2.body).toHaveLength(1);
    expect(new Set([...page1.body, ...page2.body].map((s: { id: string }) => s.id)).size).toBe(3);
    expect((await t.request("GET", "/events?cursor=garbage", { key: ns })).status).toBe(400);
  });

  it("pages every list through rows created within one millisecond, with no gaps or duplicates", async () => {
    const ns = `same-ms-${Date.now()}`;
    const key = await t.keyWith(["admin"], ns);
    // 17 rows of each list inside one millisecond: 7 at the very same microsecond (ties broken by
    // id), the others a microsecond apart.
    const base = "2026-03-01 12:00:00.123";
    const micros = (i: number) => `${base}${String(i < 7 ? 0 : i).padStart(3, "0")}+00`;
    const subscriptions: string[] = [];
    for (let i = 0; i < 17; i++) {
      const created = await t.request("POST", "/events", { body: valid, key });
      subscriptions.push(created.body.id);
      await t.app.db.query("UPDATE subscriptions SET created_at = $2 WHERE id = $1", [
        created.body.id,
        micros(i),
      ]);
    }
    const sub = subscriptions[0]!;
    const deliveries: string[] = [];
    const alerts: string[] = [];
    for (let i = 0; i < 17; i++) {
      deliveries.push(`dlv_ms_${i}`);
      await t.app.db.query(
        `INSERT INTO deliveries (id, namespace, subscription_id, event_id, event_type, attempt, status, finished_at, created_at)
         VALUES ($1, $2, $3, $4, 'task.failed', 1, 'failed', now(), $5)`,
        [`dlv_ms_${i}`, ns, sub, `evt_ms_${i}`, micros(i)],
      );
      alerts.push(`alr_ms_${i}`);
      await t.app.db.query(
        `INSERT INTO alerts (id, namespace, rule, subject, status, message, raised_at)
         VALUES ($1, $2, 'task_failed', $3, 'open', 'm', $4)`,
        [`alr_ms_${i}`, ns, `tsk_ms_${i}`, micros(i)],
      );
    }
    for (const [path, expected] of [
      ["/events", subscriptions],
      [`/events/${sub}/deliveries`, deliveries],
      ["/alerts", alerts],
    ] as const) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const response = await t.request(
          "GET",
          `${path}?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
          { key },
        );
        expect(response.status, path).toBe(200);
        seen.push(...response.body.map((row: { id: string }) => row.id));
        cursor = response.headers.get("x-next-cursor");
        pages++;
      } while (cursor && pages < 20);
      expect(pages, path).toBe(5);
      expect(seen, path).toHaveLength(17);
      expect([...seen].sort(), path).toEqual([...expected].sort());
    }
  });

  it("sends X-Next-Cursor only when another page exists", async () => {
    const key = await t.keyWith(["events:write"], `exact-${Date.now()}`);
    for (let i = 0; i < 2; i++) await t.request("POST", "/events", { body: valid, key });
    const full = await t.request("GET", "/events?limit=2", { key });
    expect(full.body).toHaveLength(2);
    expect(full.headers.get("x-next-cursor")).toBeNull();
    const partial = await t.request("GET", "/events?limit=1", { key });
    const rest = await t.request(
      "GET",
      `/events?limit=1&cursor=${encodeURIComponent(partial.headers.get("x-next-cursor")!)}`,
      { key },
    );
    expect(rest.body).toHaveLength(1);
    expect(rest.headers.get("x-next-cursor")).toBeNull();
  });

  it("patches fields, refuses a private URL and rotate_secret without hmac, re-enables", async () => {
    const created = (await t.request("POST", "/events", { body: valid })).body;
    const patched = await t.request("PATCH", `/events/${created.id}`, {
      body: { event_types: ["task.*"], format: "xml", filter: { name: "backup_*" }, enabled: false },
    });
    expect(patched.body).toMatchObject({
      event_types: ["task.*"],
      format: "xml",
      filter: { name: "backup_*" },
      enabled: false,
    });
    expect(
      (await t.request("PATCH", `/events/${created.id}`, { body: { callback_url: "http://10.1.1.1/" } }))
        .status,
    ).toBe(422);
    expect(
      (await t.request("PATCH", `/events/${created.id}`, { body: { rotate_secret: true } })).status,
    ).toBe(422);
    expect((await t.request("PATCH", `/events/${created.id}`, { body: {} })).status).toBe(400);
    const enabled = await t.request("PATCH", `/events/${created.id}`, { body: { enabled: true } });
    expect(enabled.body).toMatchObject({ enabled: true, disabled_reason: null });
    const hmac = await t.request("PATCH", `/events/${created.id}`, { body: { auth: { type: "hmac" } } });
    expect(hmac.body.signing_secret).toMatch(/^whsec_/);
    expect((await t.request("GET", `/events/${created.id}`)).body.signing_secret).toBeUndefined();
  });

  it("deletes: 204, then 404", async () => {
    const created = (await t.request("POST", "/events", { body: valid })).body;
    expect((await t.request("DELETE", `/events/${created.id}`)).status).toBe(204);
    expect((await t.request("GET", `/events/${created.id}`)).status).toBe(404);
    expect((await t.request("DELETE", `/events/${created.id}`)).status).toBe(404);
  });

  it("answers 404 for the deliveries of an unknown subscription and 400 for an unknown status filter", async () => {
    expect((await t.request("GET", "/events/sub_nope/deliveries")).status).toBe(404);
    const created = (await t.request("POST", "/events", { body: valid })).body;
    expect((await t.request("GET", `/events/${created.id}/deliveries?status=lost`)).status).toBe(400);
    expect((await t.request("POST", "/deliveries/dlv_nope/redeliver")).status).toBe(404);
  });
});

describe("the guard at delivery time", () => {
  it.each([
    "127.0.0.1",
    "localhost",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "[::1]",
  ])("refuses %s as the attempt connects, without opening a connection", async (host) => {
    const r = await startReceiver();
    try {
      const result = await sendWebhook({
        url: `http://${host}:${r.port}/hook`,
        headers: { "content-type": "application/json" },
        body: "{}",
        timeoutMs: 2000,
        maxResponseBytes: 1024,
        allowPrivate: false,
      });
      expect(result).toMatchObject({ refused: true, snippet: "" });
      expect(result.status).toBeUndefined();
      expect(result.error).toMatch(/forbidden|refusing/);
      expect(r.connections).toBe(0);
    } finally {
      await r.close();
    }
  });

  it("ends a delivery to a subscription saved before the guard was on: failed at once, not retried, no connection", async () => {
    const r = await startReceiver();
    try {
      const sub = (await t.request("POST", "/events", { body: { ...valid, event_types: ["task.retrying"] } }))
        .body;
      // As if created while allow_private_callbacks was set, or re-pointed by DNS since.
      await t.app.db.query("UPDATE subscriptions SET callback_url = $2 WHERE id = $1", [
        sub.id,
        `http://127.0.0.1:${r.port}/hook`,
      ]);
      await fanOutEvent(
        t.app.db,
        newEvent("task.retrying", "default", { task: { id: "tsk_g", name: "g" } }, new Date()),
      );
      await runDueDeliveries(t.app, { budgetMs: 15_000 });
      const attempts = (await t.request("GET", `/events/${sub.id}/deliveries`)).body;
      expect(attempts).toHaveLength(1);
      expect(attempts[0]).toMatchObject({ attempt: 1, status: "failed", response_status: null });
      expect(attempts[0].error).toMatch(/127\.0\.0\.1 is a forbidden/);
      expect(r.connections).toBe(0);
    } finally {
      await r.close();
    }
  });
});

describe("fan-out of events as the other areas write them", () => {
  it("a batch of records: each event reaches only its own namespace's subscriptions, and a bad record fails alone", async () => {
    const ns = `fan-${Date.now()}`;
    const otherNs = `${ns}-other`;
    const sub = await t.request("POST", "/events", {
      key: await t.keyWith(["admin"], ns),
      body: { ...valid, event_types: ["task.retrying"] },
    });
    const otherSub = await t.request("POST", "/events", {
      key: await t.keyWith(["admin"], otherNs),
      body: { ...valid, event_types: ["task.*"] },
    });
    expect(sub.status, sub.text).toBe(201);
    expect(otherSub.status, otherSub.text).toBe(201);
    const event = (namespace: string, id: string) =>
      newEvent("task.retrying", namespace, { task: { id, name: "fan" } }, new Date());
    const mine = event(ns, "tsk_fan_mine");
    const theirs = event(otherNs, "tsk_fan_theirs");
    // Its write fails (no such timestamp): it must fail without taking the others with it.
    const unstorable = { ...event(ns, "tsk_fan_bad"), occurred_at: "not a time" };
    const records = sqsEventOf(
      [mine, unstorable, theirs].map((e) => toBusEvent(e, { account: "local", region: "local" })),
      ["m1", "m2", "m3"],
    );
    records.Records.splice(1, 0, { ...records.Records[0]!, messageId: "m0", body: "not json" });

    const response = await dispatchRecords(t.app, records);

    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(["m0", "m2"]);
    const fanned = await t.app.db.rows<{ subscription_id: string; event_id: string }>(
      "SELECT subscription_id, event_id FROM deliveries WHERE subscription_id = ANY($1) ORDER BY seq",
      [[sub.body.id, otherSub.body.id]],
    );
    expect(fanned).toEqual([
      { subscription_id: sub.body.id, event_id: mine.id },
      { subscription_id: otherSub.body.id, event_id: theirs.id },
    ]);
  });

  it("a name filter matches schedule.fired, schedule.paused and schedule.resumed of the real scheduler", async () => {
    const key = await t.keyWith(["admin"], `sched-filter-${Date.now()}`);
    const sub = await t.request("POST", "/events", {
      key,
      body: { ...valid, event_types: ["schedule.*"], filter: { name: "backup_*" } },
    });
    const schedules: string[] = [];
    for (const name of ["backup_nightly", "report_daily"]) {
      const created = await t.request("POST", "/schedule", {
        key,
        body: { name, interval: 3600, command: "true" },
      });
      expect(created.status, created.text).toBe(201);
      schedules.push(created.body.schedule_id);
      expect((await t.request("POST", `/schedule/${created.body.id}/trigger`, { key })).status).toBeLessThan(
        300,
      );
      expect((await t.request("POST", `/schedule/${created.body.id}/pause`, { key })).status).toBe(200);
      expect((await t.request("POST", `/schedule/${created.body.id}/resume`, { key })).status).toBe(200);
    }
    const events = await t.app.db.rows<{ payload: Parameters<typeof fanOutEvent>[1] }>(
      "SELECT payload FROM outbox WHERE type LIKE 'schedule.%' AND payload->>'namespace' = $1 ORDER BY id",
      [sub.body.namespace],
    );
    expect(events.map((e) => e.payload.type).sort()).toEqual([
      "schedule.fired",
      "schedule.fired",
      "schedule.paused",
      "schedule.paused",
      "schedule.resumed",
      "schedule.resumed",
    ]);
    for (const { payload } of events) await fanOutEvent(t.app.db, payload);
    const fanned = await t.app.db.rows<{ event_type: string; order_key: string }>(
      "SELECT event_type, order_key FROM deliveries WHERE subscription_id = $1 ORDER BY seq",
      [sub.body.id],
    );
    expect(fanned.map((d) => d.event_type).sort()).toEqual([
      "schedule.fired",
      "schedule.paused",
      "schedule.resumed",
    ]);
    // paused and resumed are ordered per schedule; fired goes with its task's own events.
    for (const d of fanned.filter((d) => d.event_type !== "schedule.fired"))
      expect(d.order_key).toBe(`schedule:${schedules[0]}`);
  });
});

describe("alerts", () => {
  it("raises alert.raised once per failed task, keeps it open through a restart until the task succeeds, then resolves it, and lists them", async () => {
    const { task } = await createTask(
      { tasks: t.app.tasks, plugins: t.app.plugins, config: t.app.config.app, now: () => new Date() },
      "default",
      { name: "noop" },
    );
    await t.app.db.query(
      `UPDATE tasks SET status = 'failed', finished_at = now(), error = 'exit 1', attempt = max_attempts WHERE id = $1`,
      [task.id],
    );
    expect((await evaluateAlerts(t.app)).raised).toBeGreaterThanOrEqual(1);
    expect((await evaluateAlerts(t.app)).raised).toBe(0);
    const open = await t.request("GET", "/alerts?status=open");
    expect(open.status).toBe(200);
    const alert = open.body.find((a: { subject: string }) => a.subject === task.id);
    expect(alert).toMatchObject({
      rule: "task_failed",
      status: "open",
      details: {
        task_id: task.id,
        error: "exit 1",
        finished_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      },
    });
    const raised = await t.app.db.rows<{ payload: { data: { alert: { id: string } } } }>(
      "SELECT payload FROM outbox WHERE type = 'alert.raised' AND payload->'data'->'alert'->>'subject' = $1",
      [task.id],
    );
    expect(raised).toHaveLength(1);

    // Restarted: still open while the new series runs, and not raised again if it fails again.
    await t.app.db.query(
      `UPDATE tasks SET status = 'queued', finished_at = NULL, attempt = 0 WHERE id = $1`,
      [task.id],
    );
    const alertsOf = () =>
      t.app.db.rows<{ id: string; status: string }>("SELECT id, status FROM alerts WHERE subject = $1", [
        task.id,
      ]);
    await evaluateAlerts(t.app);
    expect(await alertsOf()).toEqual([{ id: alert.id, status: "open" }]);
    await t.app.db.query(
      `UPDATE tasks SET status = 'failed', finished_at = now(), attempt = max_attempts WHERE id = $1`,
      [task.id],
    );
    await evaluateAlerts(t.app);
    expect(await alertsOf()).toEqual([{ id: alert.id, status: "open" }]);
    await t.app.db.query(`UPDATE tasks SET status = 'succeeded', finished_at = now() WHERE id = $1`, [
      task.id,
    ]);
    expect((await evaluateAlerts(t.app)).resolved).toBeGreaterThanOrEqual(1);
    const all = await t.request("GET", "/alerts");
    expect(all.body.find((a: { id: string }) => a.id === alert.id)).toMatchObject({ status: "resolved" });
    const resolved = await t.app.db.rows(
      "SELECT 1 FROM outbox WHERE type = 'alert.resolved' AND payload->'data'->'alert'->>'id' = $1",
      [alert.id],
    );
    expect(resolved).toHaveLength(1);
  });

  it("raises the threshold rules (running, queued, backlog, missed schedule) and resolves them when they clear", async () => {
    const ns = `thresholds-${Date.now()}`;
    const key = await t.keyWith(["admin"], ns);
    const app = {
      ...t.app,
      config: {
        ...t.app.config,
        app: {
          ...t.app.config.app,
          alerts: {
            ...t.app.config.app.alerts,
            task_running_longer_than_seconds: 60,
            task_queued_longer_than_seconds: 60,
            queue_backlog_age_seconds: 60,
            schedule_missed_grace_seconds: 60,
          },
        },
      },
    };
    const make = async (name: string) =>
      (await t.request("POST", "/task/create", { key, body: { name, command: "true" } })).body.id as string;
    const running = await make("long_runner");
    const queued = await make("long_waiter");
    await t.app.db.query(
      `UPDATE tasks SET status = 'running', started_at = now() - interval '2 minutes', attempt = 1,
         lease_owner = 'test', lease_expires_at = now() + interval '1 minute' WHERE id = $1`,
      [running],
    );
    await t.app.db.query(`UPDATE tasks SET run_at = now() - interval '2 minutes' WHERE id = $1`, [queued]);
    const schedule = (
      await t.request("POST", "/schedule", {
        key,
        body: { name: "late_one", interval: 3600, command: "true" },
      })
    ).body.id as string;
    await t.app.db.query(`UPDATE schedules SET next_run_at = now() - interval '5 minutes' WHERE id = $1`, [
      schedule,
    ]);
    await evaluateAlerts(app);
    const open = async () =>
      (await t.request("GET", "/alerts?status=open", { key })).body
        .map((a: { rule: string; subject: string }) => `${a.rule} ${a.subject}`)
        .sort();
    expect(await open()).toEqual(
      [
        `queue_backlog ${ns}`,
        `schedule_missed ${schedule}`,
        `task_queued_long ${queued}`,
        `task_running_long ${running}`,
      ].sort(),
    );
    await evaluateAlerts(app);
    expect(await open()).toHaveLength(4);

    await t.app.db.query(
      `UPDATE tasks SET status = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL
       WHERE id = ANY($1)`,
      [[running, queued]],
    );
    await t.app.db.query(`UPDATE schedules SET next_run_at = now() + interval '1 hour' WHERE id = $1`, [
      schedule,
    ]);
    await evaluateAlerts(app);
    expect(await open()).toEqual([]);
    const resolved = await t.app.db.rows<{ type: string }>(
      "SELECT type FROM outbox WHERE payload->>'namespace' = $1 AND type LIKE 'alert.%'",
      [ns],
    );
    expect(resolved.map((r) => r.type).sort()).toEqual([
      ...Array(4).fill("alert.raised"),
      ...Array(4).fill("alert.resolved"),
    ]);
  });

  it("disables an endpoint whose every delivery failed for endpoint_failing_hours, and raises endpoint_disabled", async () => {
    const sub = (await t.request("POST", "/events", { body: { ...valid, event_types: ["task.paused"] } }))
      .body;
    // Failing for 25 h; the next attempt fails too (refused: the guard is on here).
    await t.app.db.query(
      "UPDATE subscriptions SET callback_url = 'http://127.0.0.1:9/', failing_since = now() - interval '25 hours' WHERE id = $1",
      [sub.id],
    );
    await fanOutEvent(
      t.app.db,
      newEvent("task.paused", "default", { task: { id: "tsk_p", name: "p" } }, new Date()),
    );
    await runDueDeliveries(t.app, { budgetMs: 15_000 });
    const disabled = (await t.request("GET", `/events/${sub.id}`)).body;
    expect(disabled).toMatchObject({ enabled: false });
    expect(disabled.disabled_reason).toMatch(/^every delivery failed since /);
    await evaluateAlerts(t.app);
    const alerts = (await t.request("GET", "/alerts?status=open&rule=endpoint_disabled")).body;
    expect(alerts.map((a: { subject: string }) => a.subject)).toContain(sub.id);
  });

  it("raises for a disabled endpoint and for given-up deliveries", async () => {
    const sub = (await t.request("POST", "/events", { body: valid })).body;
    await t.app.db.query(
      `UPDATE subscriptions SET enabled = false, disabled_cause = 'failing', disabled_reason = 'failing for 24 h' WHERE id = $1`,
      [sub.id],
    );
    await t.app.db.query(
      `INSERT INTO deliveries (id, namespace, subscription_id, event_id, event_type, attempt, status, finished_at)
       VALUES ('dlv_dead', 'default', $1, 'evt_dead', 'task.failed', 9, 'given_up', now())`,
      [sub.id],
    );
    await evaluateAlerts(t.app);
    const rules = (await t.request("GET", "/alerts?status=open")).body
      .filter((a: { subject: string }) => a.subject === sub.id)
      .map((a: { rule: string }) => a.rule)
      .sort();
    expect(rules).toEqual(["deliveries_given_up", "endpoint_disabled"]);
  });
});
