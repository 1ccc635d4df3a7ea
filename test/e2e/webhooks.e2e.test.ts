import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { XMLParser } from "fast-xml-parser";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PluginRegistry } from "../../functions/adapters/plugins/plugin-registry.js";
import { writeEvent } from "../../functions/adapters/postgres/event-writer.js";
import { PostgresTaskStore } from "../../functions/adapters/postgres/task-repository.js";
import { loadConfig } from "../../functions/config/load.js";
import { newEvent } from "../../functions/core/events/event.js";
import { createTask } from "../../functions/core/tasks/create-task.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { eventually, type Receiver, startReceiver } from "../helpers/receiver.js";
import { REPO_ROOT, startTme, type TmeProcess } from "../helpers/tme-process.js";

/*
 * The local runtime as users run it (`tme start`, a child process) against this file's database,
 * with ALLOW_PRIVATE_CALLBACKS=true so it may call the receivers on 127.0.0.1.
 */
let database: TestDatabase;
let tme: TmeProcess;
let dataDir: string;
let configDir: string;
let flagDir: string;
let env: Record<string, string>;
const KEY = "tme_e2e_webhooks_bootstrap_key_0123456789";
const receivers: Receiver[] = [];

async function api(method: string, urlPath: string, body?: unknown) {
  const response = await fetch(`${tme.url}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, text };
}

async function receiver(...args: Parameters<typeof startReceiver>) {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}

/** Events other than task.created are written as the engine will: in a transaction, into the outbox. */
async function emit(type: Parameters<typeof newEvent>[0], data: Record<string, unknown>) {
  const event = newEvent(type, "default", data, new Date());
  await database.db.transaction((tx) => writeEvent(tx, event));
  return event;
}

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = mkdtempSync(path.join(os.tmpdir(), "tme-e2e-data-"));
  configDir = mkdtempSync(path.join(os.tmpdir(), "tme-e2e-config-"));
  flagDir = mkdtempSync(path.join(os.tmpdir(), "tme-e2e-flags-"));
  chmodSync(flagDir, 0o755);
  cpSync(path.join(REPO_ROOT, "configurations"), configDir, { recursive: true });
  // Seconds, not minutes: a short retry base and deadline.
  const appConfig = readFileSync(path.join(configDir, "app_config.yaml"), "utf8")
    .replace("retry_base_seconds: 5", "retry_base_seconds: 0.2")
    .replace("  timeout_seconds: 10", "  timeout_seconds: 2")
    .replace("evaluate_every_seconds: 15", "evaluate_every_seconds: 0.3")
    // The flaky job's flag file is in a directory its sandbox may read.
    .replace("sandbox_read_only: []", `sandbox_read_only: [${flagDir}]`);
  writeFileSync(path.join(configDir, "app_config.yaml"), appConfig);
  env = {
    DATABASE_URL: database.url,
    TME_DATA_DIR: dataDir,
    TME_CONFIG_DIR: configDir,
    TME_BOOTSTRAP_API_KEY: KEY,
    ALLOW_PRIVATE_CALLBACKS: "true",
  };
  tme = await startTme(env);
});

afterAll(async () => {
  await tme?.stop();
  for (const r of receivers) await r.close();
  await database.drop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(configDir, { recursive: true, force: true });
  rmSync(flagDir, { recursive: true, force: true });
});

describe("webhooks through the local runtime", () => {
  it("delivers task.created as JSON, signed so that standardwebhooks verifies it", async () => {
    const r = await receiver();
    const sub = await api("POST", "/events", {
      event_types: ["task.created"],
      callback_url: `${r.url}/json`,
      format: "json",
      auth: { type: "hmac" },
      filter: { name: "noop" },
    });
    expect(sub.status).toBe(201);
    const secret = sub.body.signing_secret as string;
    expect(secret).toMatch(/^whsec_/);
    // The secret is shown once: never in a read, and stored encrypted.
    expect((await api("GET", `/events/${sub.body.id}`)).text).not.toContain(secret.slice(6));
    const stored = await database.db.rows<{ auth_secret: string }>(
      "SELECT auth_secret FROM subscriptions WHERE id = $1",
      [sub.body.id],
    );
    expect(stored[0]!.auth_secret).toMatch(/^v1:/);
    expect(stored[0]!.auth_secret).not.toContain(secret.slice(6));
    expect(statSync(path.join(dataDir, "encryption-key")).mode & 0o777).toBe(0o600);

    // task.created comes from createTask, the use case behind POST /task/create.
    const { task } = await createTask(
      {
        tasks: new PostgresTaskStore(database.db),
        plugins: await PluginRegistry.load(loadConfig({ env: {} }).plugins),
        config: loadConfig({ env: {} }).app,
        now: () => new Date(),
      },
      "default",
      { name: "noop", labels: { team: "ops" } },
    );
    const taskId = task.id;
    await emit("task.created", { task: { id: "tsk_other", name: "other", labels: {} } });
    const [got] = await r.waitFor(1);
    expect(got!.path).toBe("/json");
    expect(got!.headers["content-type"]).toBe("application/json; charset=utf-8");
    const verified = new Webhook(secret).verify(got!.body, got!.headers as Record<string, string>) as Record<
      string,
      any
    >;
    expect(verified).toMatchObject({ type: "task.created", data: { task: { id: taskId, name: "noop" } } });
    expect(Object.keys(verified)).toEqual(["id", "type", "occurred_at", "data"]);
    expect(got!.headers["webhook-id"]).toBe(verified.id);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(r.requests).toHaveLength(1);
  });

  it("delivers as XML with bearer auth, escaped and parseable", async () => {
    const r = await receiver();
    const sub = await api("POST", "/events", {
      event_types: ["task.*"],
      callback_url: r.url,
      format: "xml",
      auth: { type: "bearer", token: "s3cr3t-token" },
      filter: { labels: { kind: "xml" } },
    });
    expect(sub.status).toBe(201);
    expect(sub.text).not.toContain("s3cr3t-token");
    const name = `<b>&"quotes"'apos' café 🎉`;
    const event = await emit("task.failed", {
      task: { id: "tsk_xml", name, labels: { kind: "xml" }, error: "bad\u0001byte" },
    });
    const [got] = await r.waitFor(1);
    expect(got!.headers["content-type"]).toBe("application/xml; charset=utf-8");
    expect(got!.headers.authorization).toBe("Bearer s3cr3t-token");
    expect(got!.headers["webhook-signature"]).toBeUndefined();
    const parsed = new XMLParser({ ignoreAttributes: false, parseTagValue: false, trimValues: false }).parse(
      got!.body,
    );
    expect(parsed.event).toMatchObject({
      id: event.id,
      type: "task.failed",
      data: { task: { id: "tsk_xml", name } },
    });
    const error = parsed.event.data.task.error;
    expect(Buffer.from(error["#text"], "base64").toString("utf8")).toBe("bad\u0001byte");
  });

  it("retries 500, 500 then 200: the event arrives on the third try and all three attempts are listed", async () => {
    const r = await receiver((_req, res, i) => {
      res.statusCode = i < 2 ? 500 : 200;
      res.end();
    });
    const sub = await api("POST", "/events", { event_types: ["schedule.fired"], callback_url: r.url });
    await emit("schedule.fired", { schedule: { id: "sch_retry", name: "nightly" } });
    const got = await r.waitFor(3);
    expect(new Set(got.map((g) => g.headers["webhook-id"])).size).toBe(1);
    const attempts = await eventually(async () => {
      const list = (await api("GET", `/events/${sub.body.id}/deliveries`)).body as Array<
        Record<string, unknown>
      >;
      return list.length === 3 && list[0]!.status === "succeeded" ? list : undefined;
    });
    expect(attempts.map((a) => [a.attempt, a.status, a.response_status])).toEqual([
      [3, "succeeded", 200],
      [2, "retrying", 500],
      [1, "retrying", 500],
    ]);
  });

  it("a hanging receiver does not delay another subscription by more than 1 s", async () => {
    const hanging = await receiver(() => {});
    const healthy = await receiver();
    await api("POST", "/events", { event_types: ["alert.raised"], callback_url: hanging.url });
    await api("POST", "/events", { event_types: ["alert.raised"], callback_url: healthy.url });
    await emit("alert.raised", { alert: { id: "alr_1" } });
    await hanging.waitFor(1);
    const sentAt = Date.now();
    await emit("alert.raised", { alert: { id: "alr_2" } });
    await emit("alert.raised", { alert: { id: "alr_3" } });
    await healthy.waitFor(3);
    expect(healthy.requests[2]!.at - sentAt).toBeLessThan(1000);
  });

  it("redelivers one attempt, and redelivers given-up deliveries in bulk", async () => {
    let failing = true;
    const r = await receiver((_req, res) => {
      res.statusCode = failing ? 503 : 200;
      res.end();
    });
    const sub = await api("POST", "/events", { event_types: ["task.cancelled"], callback_url: r.url });
    await emit("task.cancelled", { task: { id: "tsk_redeliver", name: "x" } });
    await r.waitFor(1);
    // Give up at once: the subscription's deliveries are dead letters, as after 24 h. Again if
    // it raced the recording of an attempt (the next attempt's row was not yet visible to it).
    await eventually(async () => {
      const { rowCount } = await database.db.query(
        `UPDATE deliveries SET status = 'given_up', finished_at = now(), claimed_by = NULL, claimed_until = NULL
         WHERE subscription_id = $1 AND status = 'pending'`,
        [sub.body.id],
      );
      return (rowCount ?? 0) > 0;
    });
    const dead = await eventually(async () => {
      const list = (await api("GET", `/events/${sub.body.id}/deliveries?status=failed`)).body as Array<
        Record<string, any>
      >;
      return list.some((d) => d.status === "given_up") ? list : undefined;
    });
    failing = false;
    const bulk = await api("POST", `/events/${sub.body.id}/redeliver`, { status: ["given_up"] });
    expect(bulk).toMatchObject({ status: 202, body: { redelivered: 1 } });
    await eventually(
      async () =>
        r.requests.at(-1) &&
        (await api("GET", `/events/${sub.body.id}/deliveries?status=succeeded`)).body.length === 1,
    );

    const count = r.requests.length;
    const one = await api("POST", `/deliveries/${dead[0]!.id}/redeliver`);
    expect(one.status).toBe(202);
    expect(one.body).toMatchObject({ status: "pending", trigger: "redeliver" });
    await r.waitFor(count + 1);
    expect(r.requests.at(-1)!.headers["webhook-id"]).toBe(r.requests[0]!.headers["webhook-id"]);
  });

  it("POST /events/{id}/test sends a ping and reports the attempt", async () => {
    const r = await receiver();
    const sub = await api("POST", "/events", {
      event_types: ["*"],
      callback_url: r.url,
      auth: { type: "hmac" },
    });
    const ping = await api("POST", `/events/${sub.body.id}/test`);
    expect(ping.body).toMatchObject({
      status: "succeeded",
      response_status: 200,
      event_type: "ping",
      trigger: "test",
    });
    const [got] = await r.waitFor(1);
    expect(
      new Webhook(sub.body.signing_secret).verify(got!.body, got!.headers as Record<string, string>),
    ).toMatchObject({
      type: "ping",
    });
  });

  it("real tasks: echo hi and a failing command deliver task.started then their outcome, in order per task", async () => {
    const r = await receiver();
    const sub = await api("POST", "/events", {
      event_types: ["task.started", "task.succeeded", "task.failed"],
      callback_url: r.url,
      filter: { labels: { e2e: "real-run" } },
    });
    expect(sub.status).toBe(201);
    const ok = await api("POST", "/task/create", {
      name: "say_hi",
      command: "echo hi",
      labels: { e2e: "real-run" },
    });
    const bad = await api("POST", "/task/create", {
      name: "fail_fast",
      command: "false",
      max_attempts: 1,
      labels: { e2e: "real-run" },
    });
    expect([ok.status, bad.status]).toEqual([201, 201]);
    const got = (await r.waitFor(4)).map((g) => JSON.parse(g.body));
    const typesOf = (id: string) => got.filter((e) => e.data.task.id === id).map((e) => e.type);
    expect(typesOf(ok.body.id)).toEqual(["task.started", "task.succeeded"]);
    expect(typesOf(bad.body.id)).toEqual(["task.started", "task.failed"]);
    const succeeded = got.find((e) => e.type === "task.succeeded");
    expect(succeeded.data.task).toMatchObject({ id: ok.body.id, name: "say_hi", status: "succeeded" });
    expect(got.find((e) => e.type === "task.failed").data.task).toMatchObject({
      status: "failed",
      attempt: 1,
    });
    // Each delivered on its first attempt.
    await eventually(async () => {
      const list = (await api("GET", `/events/${sub.body.id}/deliveries`)).body as Array<{ status: string }>;
      return list.length === 4 && list.every((a) => a.status === "succeeded");
    });
  });

  it("a task failing on its last attempt raises alert.raised once, and alert.resolved once a restart succeeds", async () => {
    const r = await receiver();
    await api("POST", "/events", { event_types: ["alert.*"], callback_url: r.url });
    // Fails until the flag file exists (argv, no shell: `test -f FILE`).
    const flag = path.join(flagDir, `flag-${Date.now()}`);
    const task = await api("POST", "/task/create", {
      name: "flaky_job",
      command: `test -f ${flag}`,
      max_attempts: 1,
    });
    expect(task.status).toBe(201);
    const alertEvents = () =>
      r.requests.map((q) => JSON.parse(q.body)).filter((e) => e.data.alert?.subject === task.body.id);
    const [raised] = await eventually(async () => (alertEvents().length >= 1 ? alertEvents() : undefined));
    expect(raised).toMatchObject({
      type: "alert.raised",
      data: { alert: { rule: "task_failed", status: "open", details: { task_id: task.body.id } } },
    });
    // Several evaluations later, still one alert.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(alertEvents().map((e) => e.type)).toEqual(["alert.raised"]);

    writeFileSync(flag, "");
    expect((await api("POST", `/task/${task.body.id}/restart`)).status).toBe(200);
    const events = await eventually(async () => (alertEvents().length >= 2 ? alertEvents() : undefined));
    expect(events.map((e) => e.type)).toEqual(["alert.raised", "alert.resolved"]);
    expect(events[1].data.alert).toMatchObject({ id: raised.data.alert.id, status: "resolved" });
    expect((await api("GET", `/task/${task.body.id}`)).body.status).toBe("succeeded");
    const listed = (await api("GET", "/alerts?rule=task_failed")).body as Array<Record<string, unknown>>;
    expect(listed.find((a) => a.subject === task.body.id)).toMatchObject({ status: "resolved" });
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(alertEvents()).toHaveLength(2);
  });

  it("delivers events left in the outbox when TME was killed, after a restart", async () => {
    const r = await receiver();
    await api("POST", "/events", { event_types: ["task.succeeded"], callback_url: r.url });
    await tme.kill9();
    const written = [];
    for (let i = 0; i < 5; i++)
      written.push(await emit("task.succeeded", { task: { id: `tsk_restart_${i}`, name: "r" } }));
    const pending = await database.db.rows(
      "SELECT 1 FROM outbox WHERE published_at IS NULL AND type = 'task.succeeded'",
    );
    expect(pending).toHaveLength(5);
    tme = await startTme(env);
    const got = await r.waitFor(5, 20_000);
    expect(got.map((g) => JSON.parse(g.body).id).sort()).toEqual(written.map((e) => e.id).sort());
  });
});
