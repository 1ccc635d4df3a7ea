import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guardedLookup } from "../../functions/adapters/net/guarded-lookup.js";
import { createEngineHarness, type EngineHarness } from "../helpers/engine.js";

let server: http.Server;
let base: string;
const received: Array<{ method: string; url: string; body: string; headers: http.IncomingHttpHeaders }> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      received.push({ method: req.method!, url: req.url!, body, headers: req.headers });
      const status = Number(new URL(req.url!, "http://x").searchParams.get("status") ?? 200);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: status < 400 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe("the http plugin", () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await createEngineHarness({ app: { allow_private_callbacks: true } });
    await h.startPool({ slots: 2 });
  });
  afterAll(async () => {
    await h.close();
  });

  it("calls the URL with method, headers and JSON body; the response is the result", async () => {
    const task = await h.create({
      name: "http_call",
      params: {
        url: `${base}/hook?status=201`,
        method: "POST",
        headers: { "x-trace": "t1" },
        body: { a: 1 },
      },
    });
    const done = await h.waitForStatus(task.id, ["succeeded", "failed"]);
    expect(done.status).toBe("succeeded");
    expect(done.result).toMatchObject({ status: 201, body: '{"ok":true}', body_truncated: false });
    const request = received.find((r) => r.url === "/hook?status=201")!;
    expect(request).toMatchObject({ method: "POST", body: '{"a":1}' });
    expect(request.headers["x-trace"]).toBe("t1");
    expect(request.headers["content-type"]).toBe("application/json");
  });

  it("retries a 5xx and fails a 4xx at once", async () => {
    const retried = await h.create({
      name: "http_5xx",
      params: { url: `${base}/x?status=503` },
      max_attempts: 2,
    });
    const refused = await h.create({
      name: "http_4xx",
      params: { url: `${base}/x?status=404` },
      max_attempts: 3,
    });
    expect(await h.waitForStatus(retried.id, ["failed"])).toMatchObject({ attempt: 2 });
    const failed = await h.waitForStatus(refused.id, ["failed"]);
    expect(failed.attempt).toBe(1);
    expect(failed.error).toContain("answered 404");
  });

  it("refuses bad params at create time with 422", async () => {
    await expect(h.create({ name: "http_bad", params: { url: "not a url" } })).rejects.toMatchObject({
      status: 422,
    });
  });
});

describe("the http plugin without allow_private_callbacks", () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await createEngineHarness({ app: { allow_private_callbacks: false } });
    await h.startPool({ slots: 2 });
  });
  afterAll(async () => {
    await h.close();
  });

  it.each([
    ["a loopback literal", () => `${base}/private`],
    ["a hex-encoded loopback", () => `http://0x7f.0.0.1:${new URL(base).port}/private`],
    ["a name resolving to loopback", () => `http://localhost:${new URL(base).port}/private`],
    ["the metadata address", () => "http://169.254.169.254/latest/meta-data/"],
  ])("refuses %s without sending anything, and does not retry", async (_what, url) => {
    const before = received.length;
    const task = await h.create({ name: "http_private", params: { url: url() }, max_attempts: 3 });
    const done = await h.waitForStatus(task.id, ["failed", "succeeded"]);
    expect(done).toMatchObject({ status: "failed", attempt: 1 });
    expect(done.error).toMatch(/private|loopback|link-local/);
    expect(received.length).toBe(before);
  });

  it("checks the addresses at connect time too (a name that rebinds after the first check)", async () => {
    const error = await new Promise<Error>((resolve) => {
      const req = http.request(`http://localhost:${new URL(base).port}/rebind`, {
        lookup: guardedLookup(false),
      });
      req.on("error", resolve);
      req.end();
    });
    expect(error.message).toMatch(/refusing to connect to localhost/);
  });
});

describe("the clean_logs plugin", () => {
  let h: EngineHarness;
  beforeAll(async () => {
    h = await createEngineHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it("prunes events, runs of finished tasks and settled deliveries past the retention, and counts them", async () => {
    const db = h.database.db;
    const old = await h.create({ name: "noop" });
    const active = await h.create({ name: "noop" });
    await db.query(
      `UPDATE tasks SET status = 'succeeded', finished_at = now() - interval '40 days', attempt = 1 WHERE id = $1`,
      [old.id],
    );
    await db.query(`UPDATE tasks SET status = 'retrying', attempt = 1 WHERE id = $1`, [active.id]);
    for (const id of [old.id, active.id]) {
      await db.query(
        `INSERT INTO task_runs (task_id, series, attempt, status, worker_id, started_at, finished_at)
         VALUES ($1, 0, 1, 'failed', 'w', now() - interval '41 days', now() - interval '40 days')`,
        [id],
      );
    }
    await db.query(`UPDATE task_events SET occurred_at = now() - interval '40 days' WHERE task_id = $1`, [
      old.id,
    ]);
    await db.query(
      `INSERT INTO subscriptions (id, event_types, callback_url, format) VALUES ('sub_1', '{task.*}', 'https://x.example', 'json')`,
    );
    await db.query(
      `INSERT INTO deliveries (id, subscription_id, event_id, event_type, attempt, status, created_at, finished_at) VALUES
         ('dlv_old', 'sub_1', 'e1', 'task.failed', 1, 'succeeded', now() - interval '40 days', now() - interval '40 days'),
         ('dlv_wait', 'sub_1', 'e2', 'task.failed', 1, 'pending', now() - interval '40 days', NULL),
         ('dlv_new', 'sub_1', 'e3', 'task.failed', 1, 'succeeded', now(), now())`,
    );
    const clean = await h.create({ name: "clean_logs" });
    const pool = await h.startPool({ slots: 1, maintenance: false });
    const done = await h.waitForStatus(clean.id, ["succeeded", "failed"]);
    await pool.stop();
    expect(done.result).toEqual({
      deleted: { task_events: 1, task_runs: 1, deliveries: 1 },
      namespace: "default",
    });
    expect(
      await db.rows("SELECT task_id FROM task_runs WHERE task_id IN ($1, $2)", [old.id, active.id]),
    ).toEqual([{ task_id: active.id }]);
    expect((await db.rows<{ id: string }>("SELECT id FROM deliveries ORDER BY id")).map((d) => d.id)).toEqual(
      ["dlv_new", "dlv_wait"],
    );
  });
});
