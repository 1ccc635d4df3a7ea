import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, type Scope } from "../../functions/core/auth/api-keys.js";
import { newId } from "../../functions/core/ids.js";
import {
  type InProcessTme,
  parsePrometheus,
  type Sample,
  sampleSum,
  startInProcessTme,
} from "../helpers/local-runtime.js";
import { eventually, type Receiver, startReceiver } from "../helpers/receiver.js";

let tme: InProcessTme;
let receiver: Receiver;

beforeAll(async () => {
  receiver = await startReceiver();
  tme = await startInProcessTme({
    app: (app) => ({
      ...app,
      MAX_CONCURRENT_TASKS: 3,
      metrics: { ...app.metrics, port: 0, max_task_names: 4, gauge_cache_ms: 0 },
    }),
  });
});

afterAll(async () => {
  await tme?.close();
  await receiver?.close();
});

async function scrape(key = tme.key): Promise<Sample[]> {
  const response = await tme.api("GET", "/metrics", undefined, key);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(response.text);
}

describe("GET /metrics access", () => {
  it("needs metrics:read or admin on the API port, and no key on metrics.port (127.0.0.1)", async () => {
    expect((await tme.api("GET", "/metrics", undefined, "")).status).toBe(401);
    const keyWith = async (scopes: Scope[]) =>
      (await createApiKey(tme.tme.app.apiKeys, { name: scopes.join("+"), scopes, newId: () => newId("key") }))
        .key;
    const tasksReadKey = await keyWith(["tasks:read"]);
    const prometheusKey = await keyWith(["metrics:read"]);
    const forbidden = await tme.api("GET", "/metrics", undefined, tasksReadKey);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error.code).toBe("forbidden");
    const samples = await scrape(prometheusKey);
    expect(samples.some((s) => s.name === "process_cpu_user_seconds_total")).toBe(true);
    expect(samples.some((s) => s.name === "nodejs_eventloop_lag_seconds")).toBe(true);

    const keyless = await fetch(tme.tme.metricsUrl!);
    expect(tme.tme.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(keyless.status).toBe(200);
    expect(parsePrometheus(await keyless.text()).some((s) => s.name === "tme_worker_slots")).toBe(true);
    const other = await fetch(tme.tme.metricsUrl!.replace("/metrics", "/task/x"));
    expect(other.status).toBe(404);
  });
});

describe("metrics while tasks run", () => {
  it("count created, succeeded and failed tasks, observe latencies, and return the gauges to zero when idle", async () => {
    const subscription = await tme.api("POST", "/events", {
      event_types: ["task.succeeded"],
      callback_url: `${receiver.url}/hook`,
      filter: { name: "sleep_ok" },
    });
    expect(subscription.status).toBe(201);
    const before = await scrape();

    const slow = await tme.api("POST", "/task/create", { name: "sleep_slow", params: { seconds: 2 } });
    expect(slow.status).toBe(201);
    const ok: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await tme.api("POST", "/task/create", { name: "sleep_ok", params: { seconds: 0.05 } });
      expect(created.status).toBe(201);
      ok.push(created.body.id);
    }
    for (let i = 0; i < 2; i++) {
      const created = await tme.api("POST", "/task/create", {
        name: "sleep_fail",
        params: { seconds: 0.01, fail: true },
      });
      expect(created.status).toBe(201);
    }
    const unknown = await tme.api("GET", "/task/tsk_does_not_exist");
    expect(unknown.status).toBe(404);

    // While the slow task runs: it shows in the running gauge and holds a worker slot.
    const during = await eventually(async () => {
      const samples = await scrape();
      return sampleSum(samples, "tme_tasks", { task_name: "sleep_slow", status: "running" }) === 1
        ? samples
        : undefined;
    });
    expect(sampleSum(during, "tme_worker_slots", { state: "busy" })).toBeGreaterThanOrEqual(1);
    expect(sampleSum(during, "tme_worker_slots")).toBe(3);
    expect(sampleSum(during, "tme_tasks_created_total", { task_name: "sleep_ok" })).toBe(3);
    expect(
      sampleSum(during, "tme_tasks_created_total", { task_name: "sleep_fail", namespace: "default" }),
    ).toBe(2);

    // Everything done, the webhooks delivered: counters moved by exactly what happened.
    await receiver.waitFor(3, 30_000);
    const after = await eventually(async () => {
      const samples = await scrape();
      const idle =
        sampleSum(samples, "tme_tasks_finished_total", { task_name: "sleep_slow", outcome: "succeeded" }) ===
          1 &&
        sampleSum(samples, "tme_webhook_deliveries_total", { outcome: "succeeded" }) >= 3 &&
        sampleSum(samples, "tme_worker_slots", { state: "busy" }) === 0;
      return idle ? samples : undefined;
    }, 30_000);
    const delta = (name: string, labels: Record<string, string>) =>
      sampleSum(after, name, labels) - sampleSum(before, name, labels);

    expect(delta("tme_tasks_finished_total", { task_name: "sleep_ok", outcome: "succeeded" })).toBe(3);
    expect(delta("tme_tasks_finished_total", { task_name: "sleep_fail", outcome: "failed" })).toBe(2);
    expect(delta("tme_task_attempts_started_total", {})).toBe(6);
    expect(delta("tme_task_attempts_finished_total", { outcome: "succeeded" })).toBe(4);
    expect(delta("tme_task_attempt_duration_seconds_count", {})).toBe(6);
    expect(delta("tme_task_attempt_duration_seconds_count", { task_name: "sleep_slow" })).toBe(1);
    // The slow task ran about 2 s: its duration lands in the buckets above 1 s, not below.
    expect(delta("tme_task_attempt_duration_seconds_bucket", { task_name: "sleep_slow", le: "1" })).toBe(0);
    expect(delta("tme_task_attempt_duration_seconds_bucket", { task_name: "sleep_slow", le: "5" })).toBe(1);
    expect(delta("tme_task_start_latency_seconds_count", {})).toBe(6);
    expect(delta("tme_webhook_delivery_duration_seconds_count", { outcome: "succeeded" })).toBe(3);
    expect(delta("tme_http_requests_total", { method: "POST", route: "/task/create", status: "201" })).toBe(
      6,
    );
    expect(delta("tme_http_requests_total", { method: "GET", route: "/task/{task_id}", status: "404" })).toBe(
      1,
    );
    expect(sampleSum(after, "tme_http_request_duration_seconds_count", { route: "/task/create" })).toBe(6);
    // Route templates only: no raw id ever becomes a label.
    expect(after.filter((s) => Object.values(s.labels).some((v) => v.includes("tsk_")))).toEqual([]);

    // Idle: the gauges that counted these tasks are back to zero (present, not absent).
    const running = after.filter(
      (s) => s.name === "tme_tasks" && s.labels.task_name === "sleep_slow" && s.labels.status === "running",
    );
    expect(running.map((s) => s.value)).toEqual([0]);
    expect(sampleSum(after, "tme_tasks")).toBe(0);
    expect(sampleSum(after, "tme_worker_slots", { state: "free" })).toBe(3);
    expect(sampleSum(after, "tme_metrics_database_up")).toBe(1);
    expect(after.some((s) => s.name === "tme_db_pool_connections" && s.labels.state === "idle")).toBe(true);
    expect(sampleSum(after, "tme_db_pool_max")).toBe(tme.tme.app.config.db.pool.max);
    await eventually(async () => sampleSum(await scrape(), "tme_outbox_backlog") === 0);
  });

  it("caps task-name labels: names past metrics.max_task_names count as 'other'", async () => {
    for (const name of ["noop_a", "noop_b", "noop_c"]) {
      expect((await tme.api("POST", "/task/create", { name })).status).toBe(201);
    }
    const samples = await scrape();
    const names = new Set(
      samples.filter((s) => s.name === "tme_tasks_created_total").map((s) => s.labels.task_name),
    );
    // sleep_slow, sleep_ok, sleep_fail and one noop name got their own label; the rest share "other".
    expect(names.size).toBe(5);
    expect(names.has("other")).toBe(true);
    expect(sampleSum(samples, "tme_tasks_created_total", { task_name: "other" })).toBe(2);
  });
});
