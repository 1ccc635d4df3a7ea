import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DASHBOARD_CSP } from "../../functions/http/routes/dashboard.js";
import { type InProcessTme, startInProcessTme } from "../helpers/local-runtime.js";

let tme: InProcessTme;
beforeAll(async () => {
  tme = await startInProcessTme();
});
afterAll(async () => {
  await tme?.close();
});

/** Reads server-sent events from GET /stream until `until` says enough, or the time runs out. */
async function readStream(key: string, until: (events: any[]) => boolean, act: () => Promise<void>) {
  const controller = new AbortController();
  const response = await fetch(`${tme.tme.url}/stream`, {
    headers: { authorization: `Bearer ${key}` },
    signal: controller.signal,
  });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/event-stream");
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: any[] = [];
  let buffer = "";
  let acted = false;
  const deadline = setTimeout(() => controller.abort(), 15_000);
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        const type = /^event: (.*)$/m.exec(block)?.[1];
        if (type === "hello" && !acted) {
          acted = true;
          await act();
        }
        if (type === "task" && data) events.push(JSON.parse(data));
      }
    }
  } finally {
    clearTimeout(deadline);
    controller.abort();
  }
  return events;
}

describe("the dashboard's server side", () => {
  it("serves the page with a strict CSP, and its assets, without a key", async () => {
    const page = await fetch(`${tme.tme.url}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).not.toContain("unsafe-inline");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    const html = await page.text();
    expect(html).not.toMatch(/<script>(?!<)/);
    const asset = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const js = await fetch(`${tme.tme.url}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("javascript");
    expect((await fetch(`${tme.tme.url}/dashboard/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${tme.tme.url}/dashboard/assets/..%2Fpackage.json`)).status).toBe(400);
  });

  it("GET /whoami names the key, its namespace and scopes; 401 without a key", async () => {
    const who = await tme.api("GET", "/whoami");
    expect(who.status).toBe(200);
    expect(who.body).toMatchObject({ namespace: "default", scopes: ["admin"], admin: true });
    expect((await fetch(`${tme.tme.url}/whoami`)).status).toBe(401);
  });

  it("GET /stats counts by status and per finished minute, with the queue's depth", async () => {
    const created = await tme.api("POST", "/task/create", { name: "stats_probe", command: "true" });
    expect(created.status).toBe(201);
    for (let i = 0; i < 100; i++) {
      const task = await tme.api("GET", `/task/${created.body.id}`);
      if (task.body.status === "succeeded") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const stats = await tme.api("GET", "/stats");
    expect(stats.status).toBe(200);
    expect(stats.body.counts.succeeded).toBeGreaterThanOrEqual(1);
    const finished = stats.body.finished_per_minute.reduce((s: number, m: any) => s + m.succeeded, 0);
    expect(finished).toBeGreaterThanOrEqual(1);
    expect(stats.body.failure_rate_last_hour).toBe(0);
    expect(typeof stats.body.queue_depth).toBe("number");
    const spec = await tme.api("GET", "/openapi.json");
    expect(Object.keys(spec.body.paths)).toEqual(expect.arrayContaining(["/stats", "/whoami", "/stream"]));
  });

  it("GET /stream sends the namespace's task events as they happen, and needs a key with tasks:read", async () => {
    expect((await fetch(`${tme.tme.url}/stream`)).status).toBe(401);
    let id = "";
    const events = await readStream(
      tme.key,
      (seen) => seen.some((e) => e.task_id === id && e.type === "task.succeeded"),
      async () => {
        const created = await tme.api("POST", "/task/create", { name: "stream_probe", command: "true" });
        id = created.body.id;
      },
    );
    const types = events.filter((e) => e.task_id === id).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["task.created", "task.started", "task.succeeded"]));
  });
});
