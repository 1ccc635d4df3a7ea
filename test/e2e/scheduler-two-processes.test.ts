import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { startTme, type TmeProcess } from "../helpers/tme-process.js";

const BOOTSTRAP_KEY = "two-schedulers-bootstrap-key-0123456789";

let database: TestDatabase;
const dataDirs: string[] = [];
const processes: TmeProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  for (const p of processes) await p.kill9();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  await database.drop();
});

/** A `tme start` of its own (data directory, port), on the shared test database. */
async function startOne(): Promise<TmeProcess> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "tme-two-schedulers-"));
  dataDirs.push(dataDir);
  const tme = await startTme({
    DATABASE_URL: database.url,
    TME_DATA_DIR: dataDir,
    TME_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY,
  });
  processes.push(tme);
  return tme;
}

async function api(
  tme: TmeProcess,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${tme.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: res.status === 204 ? undefined : await res.json() };
}

describe("two `tme start` processes on one database", () => {
  it("fire each occurrence of a 1 s schedule exactly once, none lost; its tasks run and GET /tasks?schedule_id= lists them", async () => {
    const [a, b] = await Promise.all([startOne(), startOne()]);
    // Both are serving, each with its own scheduler loop on the same schedules table.
    for (const tme of [a!, b!]) expect((await api(tme, "GET", "/health")).status).toBe(200);

    const made = await api(a!, "POST", "/schedule", {
      name: "hello",
      command: "echo hi",
      interval: 1,
      overlap: "allow",
    });
    expect(made.status).toBe(201);
    const id: string = made.body.schedule_id;
    await new Promise((r) => setTimeout(r, 4500));
    // Paused through the other process: either one may change what both fire.
    expect((await api(b!, "POST", `/schedule/${id}/pause`)).status).toBe(200);
    // A firing decided just before the pause commits after it at the latest.
    await new Promise((r) => setTimeout(r, 200));

    const fired = await database.db.rows<{ scheduled_for: string; task_id: string; missed: number }>(
      `SELECT data->>'scheduled_for' AS scheduled_for, data->>'task_id' AS task_id,
              (data->>'missed_count')::int AS missed
       FROM task_events WHERE type = 'schedule.fired' AND data->>'schedule_id' = $1`,
      [id],
    );
    const perOccurrence = new Map<string, number>();
    for (const f of fired) perOccurrence.set(f.scheduled_for, (perOccurrence.get(f.scheduled_for) ?? 0) + 1);
    const tasks = await database.db.rows<{ id: string }>("SELECT id FROM tasks WHERE schedule_id = $1", [id]);

    expect(fired.length).toBeGreaterThanOrEqual(3);
    expect([...perOccurrence.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(tasks.map((t) => t.id).sort()).toEqual(fired.map((f) => f.task_id).sort());
    // One timeline, created_at + 1 s, + 2 s, ..., none lost: each firing follows the last by one
    // second, or by more only when it says it folded in the occurrences between (a loaded machine).
    const ordered = [...fired].sort((x, y) => Date.parse(x.scheduled_for) - Date.parse(y.scheduled_for));
    let previous = Date.parse(made.body.created_at);
    for (const f of ordered) {
      expect(Date.parse(f.scheduled_for) - previous).toBe((f.missed + 1) * 1000);
      previous = Date.parse(f.scheduled_for);
    }

    // The engine of either process runs what either scheduler fired.
    const deadline = Date.now() + 10_000;
    let runs: { id: string; status: string; schedule_id: string; result: unknown }[] = [];
    for (;;) {
      runs = (await api(b!, "GET", `/tasks?schedule_id=${id}&limit=100`)).body;
      if (runs.every((r) => r.status === "succeeded") || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(runs.map((r) => r.id).sort()).toEqual(tasks.map((t) => t.id).sort());
    for (const run of runs) {
      expect(run).toMatchObject({
        status: "succeeded",
        schedule_id: id,
        result: { output: "hi\n", exit_code: 0 },
      });
    }
    console.log(`[two-processes] ${fired.length} occurrences, ${tasks.length} tasks, each fired once`);
  }, 90_000);
});
