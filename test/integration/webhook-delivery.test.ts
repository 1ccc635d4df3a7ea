import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { writeEvent } from "../../functions/adapters/postgres/event-writer.js";
import type { AppContext } from "../../functions/context.js";
import { newEvent } from "../../functions/core/events/event.js";
import { createTask } from "../../functions/core/tasks/create-task.js";
import { deliveryWorkerService } from "../../functions/local/delivery-worker-service.js";
import { localEventBusSink } from "../../functions/local/event-bus-sink.js";
import { localQueueSink, outboxRelayService } from "../../functions/local/outbox-relay-service.js";
import type { BackgroundService } from "../../functions/local/runtime.js";
import { eventually, type Receiver, startReceiver } from "../helpers/receiver.js";
import { withTestApp } from "../helpers/test-app.js";

let services: BackgroundService[];
const receivers: Receiver[] = [];

const t = withTestApp({
  app: {
    allow_private_callbacks: true,
    webhooks: {
      timeout_seconds: 1,
      max_response_bytes: 4096,
      give_up_after_hours: 24,
      per_endpoint_concurrency: 2,
      retry_base_seconds: 0.1,
      secret_rotation_grace_hours: 1,
      max_in_flight: 16,
    },
  },
});
beforeAll(async () => {
  services = [
    outboxRelayService(t.app, [localQueueSink, localEventBusSink(t.app)]),
    deliveryWorkerService(t.app),
  ];
  for (const s of services) await s.start();
});
afterAll(async () => {
  for (const s of services.reverse()) await s.stop();
});
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});

async function receiver(...args: Parameters<typeof startReceiver>) {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}

async function subscribe(body: Record<string, unknown>) {
  const response = await t.request("POST", "/events", { body: { event_types: ["*"], ...body } });
  expect(response.status, response.text).toBe(201);
  return response.body as { id: string; signing_secret?: string };
}

/** Writes an event as the engine would: in a transaction, through the outbox. */
async function emit(app: AppContext, type: Parameters<typeof newEvent>[0], data: Record<string, unknown>) {
  const event = newEvent(type, "default", data, new Date());
  await app.db.transaction((tx) => writeEvent(tx, event));
  return event;
}

async function deliveries(subscriptionId: string) {
  const response = await t.request("GET", `/events/${subscriptionId}/deliveries`);
  expect(response.status).toBe(200);
  return response.body as Array<Record<string, any>>;
}

describe("webhook delivery", () => {
  it("retries a 500 twice and delivers on the third attempt, listing all three attempts", async () => {
    const r = await receiver((_req, res, i) => {
      res.statusCode = i < 2 ? 500 : 200;
      res.end(i < 2 ? "boom" : "ok");
    });
    const sub = await subscribe({ callback_url: `${r.url}/hook`, event_types: ["task.created"] });
    const { task } = await createTask(
      { tasks: t.app.tasks, plugins: t.app.plugins, config: t.app.config.app, now: () => new Date() },
      "default",
      { name: "noop" },
    );
    const got = await r.waitFor(3);
    expect(got.map((g) => JSON.parse(g.body).data.task.id)).toEqual([task.id, task.id, task.id]);
    const attempts = await eventually(async () => {
      const list = await deliveries(sub.id);
      return list.length === 3 && list.every((d) => d.status !== "pending") ? list : undefined;
    });
    expect(attempts.map((d) => [d.attempt, d.status, d.response_status]).reverse()).toEqual([
      [1, "retrying", 500],
      [2, "retrying", 500],
      [3, "succeeded", 200],
    ]);
    expect(attempts[2]).toMatchObject({ response_snippet: "boom", error: "endpoint answered 500" });
    expect(attempts.every((d) => typeof d.latency_ms === "number")).toBe(true);
  });

  it("a hanging endpoint does not delay another subscription by more than 1 s", async () => {
    const hanging = await receiver(() => {});
    const healthy = await receiver();
    await subscribe({ callback_url: hanging.url, event_types: ["schedule.fired"] });
    await subscribe({ callback_url: healthy.url, event_types: ["schedule.fired"] });
    const started = Date.now();
    for (let i = 0; i < 5; i++)
      await emit(t.app, "schedule.fired", { schedule: { id: `sch_${i}`, name: "s" } });
    await healthy.waitFor(5, 5000);
    expect(healthy.requests[4]!.at - started).toBeLessThan(1000 + 500);
    await hanging.waitFor(1);
  });

  it("keeps a task's events in order for one endpoint", async () => {
    const r = await receiver();
    await subscribe({ callback_url: r.url, event_types: ["task.started", "task.succeeded"] });
    const task = { id: "tsk_order", name: "ordered" };
    await emit(t.app, "task.started", { task });
    await emit(t.app, "task.succeeded", { task });
    const got = await r.waitFor(2);
    expect(got.map((g) => JSON.parse(g.body).type)).toEqual(["task.started", "task.succeeded"]);
  });

  it("ends a slow-drip response at the deadline and records a timeout", async () => {
    const r = await receiver((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      const drip = setInterval(() => res.write("."), 200);
      res.on("close", () => clearInterval(drip));
    });
    const sub = await subscribe({ callback_url: r.url, event_types: ["alert.raised"] });
    await emit(t.app, "alert.raised", { alert: { id: "alr_drip" } });
    const first = await eventually(async () =>
      (await deliveries(sub.id)).find((d) => d.attempt === 1 && d.status !== "pending"),
    );
    expect(first.status).toBe("retrying");
    expect(first.error).toMatch(/timed out/);
    expect(first.latency_ms).toBeGreaterThanOrEqual(900);
    expect(first.latency_ms).toBeLessThan(2000);
    await t.request("DELETE", `/events/${sub.id}`);
  });

  it("reads at most max_response_bytes of a 50 MB body", async () => {
    let written = 0;
    let finished = false;
    const r = await receiver((_req, res) => {
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": String(50 * 1024 * 1024),
      });
      const chunk = Buffer.alloc(64 * 1024, 97);
      const pump = () => {
        while (written < 50 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        finished = true;
        res.end();
      };
      res.on("close", () => {});
      pump();
    });
    const sub = await subscribe({ callback_url: r.url, event_types: ["alert.resolved"] });
    await emit(t.app, "alert.resolved", { alert: { id: "alr_big" } });
    const attempt = await eventually(async () =>
      (await deliveries(sub.id)).find((d) => d.status !== "pending"),
    );
    expect(attempt.status).toBe("succeeded");
    expect(attempt.response_snippet.length).toBeLessThanOrEqual(1024);
    expect(finished).toBe(false);
    expect(written).toBeLessThan(50 * 1024 * 1024);
    await t.request("DELETE", `/events/${sub.id}`);
  });

  it("does not follow a redirect", async () => {
    const target = await receiver();
    const r = await receiver((_req, res) => {
      res.writeHead(302, { location: `${target.url}/elsewhere` });
      res.end();
    });
    const sub = await subscribe({ callback_url: r.url, event_types: ["schedule.paused"] });
    await emit(t.app, "schedule.paused", { schedule: { id: "sch_redirect", name: "r" } });
    const attempt = await eventually(async () =>
      (await deliveries(sub.id)).find((d) => d.status !== "pending"),
    );
    expect(attempt).toMatchObject({ status: "retrying", response_status: 302 });
    expect(target.requests).toHaveLength(0);
    expect(target.connections).toBe(0);
    await t.request("DELETE", `/events/${sub.id}`);
  });

  it("honours Retry-After on 429", async () => {
    const r = await receiver((_req, res, i) => {
      if (i === 0) {
        res.writeHead(429, { "retry-after": "2" });
        res.end();
      } else res.end("ok");
    });
    await subscribe({ callback_url: r.url, event_types: ["schedule.resumed"] });
    await emit(t.app, "schedule.resumed", { schedule: { id: "sch_429", name: "r" } });
    const [first, second] = await r.waitFor(2, 10_000);
    // The schedule alone would retry after ~0.1 s; Retry-After asks for 2 s.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1900);
  });

  it("disables the subscription on 410 Gone", async () => {
    const r = await receiver((_req, res) => {
      res.statusCode = 410;
      res.end();
    });
    const sub = await subscribe({ callback_url: r.url, event_types: ["task.paused"] });
    await emit(t.app, "task.paused", { task: { id: "tsk_gone", name: "g" } });
    const disabled = await eventually(async () => {
      const s = (await t.request("GET", `/events/${sub.id}`)).body;
      return s.enabled === false ? s : undefined;
    });
    expect(disabled.disabled_reason).toMatch(/410/);
    const [attempt] = await deliveries(sub.id);
    expect(attempt).toMatchObject({ status: "failed", response_status: 410 });
    await emit(t.app, "task.paused", { task: { id: "tsk_gone2", name: "g" } });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(r.requests).toHaveLength(1);
  });

  it("signs with both secrets during a rotation's grace period", async () => {
    const r = await receiver();
    const sub = await subscribe({
      callback_url: r.url,
      event_types: ["task.resumed"],
      auth: { type: "hmac" },
    });
    const rotated = await t.request("PATCH", `/events/${sub.id}`, { body: { rotate_secret: true } });
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.signing_secret as string;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(sub.signing_secret);
    await emit(t.app, "task.resumed", { task: { id: "tsk_rot", name: "x" } });
    const [got] = await r.waitFor(1);
    const headers = got!.headers as Record<string, string>;
    expect(headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(new Webhook(newSecret).verify(got!.body, headers)).toMatchObject({ type: "task.resumed" });
    expect(new Webhook(sub.signing_secret!).verify(got!.body, headers)).toMatchObject({
      type: "task.resumed",
    });
  });
});
