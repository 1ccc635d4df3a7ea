import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DASHBOARD_CSP } from "../../functions/http/routes/dashboard-files.js";
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

  it("GET /tasks/actions/preview counts what a bulk action would change and skip, changing nothing", async () => {
    const paused = [];
    for (let i = 0; i < 3; i++) {
      const t = await tme.api("POST", "/task/create", {
        name: "preview_probe",
        command: "true",
        run_at: "2099-01-01T00:00:00Z",
      });
      paused.push(t.body.id);
    }
    await tme.api("POST", `/task/${paused[0]}/pause`);
    const preview = await tme.api("GET", "/tasks/actions/preview?action=resume&name=preview_probe");
    expect(preview.status).toBe(200);
    expect(preview.body).toEqual({ changed: 1, skipped: 2, more: false });
    const cancel = await tme.api(
      "GET",
      "/tasks/actions/preview?action=cancel&name=preview_probe&status=queued",
    );
    expect(cancel.body).toEqual({ changed: 2, skipped: 0, more: false });
    expect((await tme.api("GET", `/task/${paused[0]}`)).body.status).toBe("paused");
    const applied = await tme.api("POST", "/tasks/actions", {
      action: "resume",
      filter: { name: "preview_probe" },
    });
    expect(applied.body).toEqual(preview.body);
    const empty = await tme.api("GET", "/tasks/actions/preview?action=cancel");
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toContain("give at least one filter");
    const bad = await tme.api("GET", "/tasks/actions/preview?action=explode&name=x");
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe("query.action");
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
