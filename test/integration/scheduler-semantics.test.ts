import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Database } from "../../functions/adapters/postgres/database.js";
import { createAppContext } from "../../functions/context.js";
import { type FireOutcome, fireDueSchedules } from "../../functions/core/schedules/fire-schedule.js";
import { createSchedule as createScheduleAt } from "../../functions/core/schedules/manage-schedules.js";
import type { BackgroundService } from "../../functions/local/runtime.js";
import { schedulerService } from "../../functions/local/scheduler-service.js";
import { firings } from "../helpers/firings.js";
import { withTestApp } from "../helpers/test-app.js";
import { sleep, waitFor } from "../helpers/wait.js";

const running: BackgroundService[] = [];
const extraDbs: Database[] = [];

const t = withTestApp();
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  await Promise.all(extraDbs.map((db) => db.close()));
});

/** A scheduler loop as a second TME process would run it: its own pool, its own LISTEN connection. */
async function startScheduler(ownPool = false): Promise<BackgroundService> {
  let app = t.app;
  if (ownPool) {
    const db = new Database({ connectionString: t.database.url, max: 4 });
    extraDbs.push(db);
    app = createAppContext(t.app.config, db, t.database.url, t.app.logger, t.app.plugins);
  }
  const service = schedulerService(app);
  await service.start();
  running.push(service);
  return service;
}

async function taskCount(scheduleId: string): Promise<number> {
  const rows = await t.app.db.rows<{ n: number }>("SELECT count(*) AS n FROM tasks WHERE schedule_id = $1", [
    scheduleId,
  ]);
  return rows[0]!.n;
}

async function createSchedule(body: Record<string, unknown>) {
  const res = await t.request("POST", "/schedule", { body });
  expect(res.status).toBe(201);
  return res.body as { id: string; created_at: string; next_run_at: string };
}

/** What the engine does when a run ends; the engine is not part of this test. */
async function finishTasks(scheduleId: string) {
  await t.app.db.query(
    "UPDATE tasks SET status = 'succeeded', finished_at = now() WHERE schedule_id = $1 AND status = 'queued'",
    [scheduleId],
  );
}

describe("two schedulers on one database", () => {
  it("fire each occurrence exactly once", async () => {
    await startScheduler(true);
    await startScheduler(true);
    const schedules = await Promise.all(
      Array.from({ length: 4 }, () => createSchedule({ name: "noop_race", interval: 1, overlap: "allow" })),
    );
    await sleep(5200);
    for (const s of schedules) await t.request("POST", `/schedule/${s.id}/pause`);

    for (const s of schedules) {
      const fired = await firings(t.app.db, s.id);
      const perOccurrence = new Map<string, number>();
      for (const f of fired)
        perOccurrence.set(f.scheduled_for, (perOccurrence.get(f.scheduled_for) ?? 0) + 1);
      expect(fired.length).toBeGreaterThanOrEqual(4);
      expect([...perOccurrence.values()].every((n) => n === 1)).toBe(true);
      expect(await taskCount(s.id)).toBe(fired.length);
      // Consecutive: no occurrence lost between the two loops either.
      const instants = [...perOccurrence.keys()].map(Date.parse).sort((a, b) => a - b);
      for (let i = 1; i < instants.length; i++) expect(instants[i]! - instants[i - 1]!).toBe(1000);
    }
  }, 20_000);
});

describe("missed firings", () => {
  it("after downtime, fires the missed occurrences once, says so, then continues on the timeline", async () => {
    const s = await createSchedule({ name: "noop_downtime", interval: 1, overlap: "allow" });
    // No scheduler is running: TME is "down" for about 3.5 occurrences.
    await sleep(3600);
    expect(await taskCount(s.id)).toBe(0);
    await startScheduler();
    await waitFor(
      "the catch-up and two timeline firings",
      async () => ((await firings(t.app.db, s.id)).length >= 3 ? true : undefined),
      5000,
    );
    await t.request("POST", `/schedule/${s.id}/pause`);
    const [catchUp, ...after] = await firings(t.app.db, s.id);
    expect(catchUp!.missed_count).toBeGreaterThanOrEqual(2);
    // The catch-up is for the latest occurrence that was due; the ones before it were folded in.
    const first = Date.parse(s.next_run_at);
    expect(Date.parse(catchUp!.scheduled_for)).toBe(first + catchUp!.missed_count * 1000);
    for (const [i, f] of after.entries()) {
      expect(f.missed_count).toBe(0);
      expect(Date.parse(f.scheduled_for)).toBe(Date.parse(catchUp!.scheduled_for) + (i + 1) * 1000);
    }
  }, 15_000);
});

describe("overlap", () => {
  it("skip: no new run while the last is unfinished (counted on the schedule, no fired event); runs again once it ends", async () => {
    await startScheduler();
    const s = await createSchedule({ name: "noop_skip", interval: 1 });
    await waitFor("the first firing", async () => ((await taskCount(s.id)) === 1 ? true : undefined), 3000);
    await sleep(2300);
    expect(await taskCount(s.id)).toBe(1);
    expect((await firings(t.app.db, s.id)).length).toBe(1);
    const view = (await t.request("GET", `/schedule/${s.id}`)).body;
    expect(view.skipped_count).toBeGreaterThanOrEqual(2);
    expect(view.last_skipped_at).not.toBeNull();

    await finishTasks(s.id);
    await waitFor(
      "a run after the first ended",
      async () => ((await taskCount(s.id)) === 2 ? true : undefined),
      2500,
    );
    await t.request("POST", `/schedule/${s.id}/pause`);
  }, 15_000);

  it("queue: holds the next occurrence until the last run ends, then fires it once", async () => {
    await startScheduler();
    const s = await createSchedule({ name: "noop_queue", interval: 1, overlap: "queue" });
    await waitFor("the first firing", async () => ((await taskCount(s.id)) === 1 ? true : undefined), 3000);
    await sleep(2300);
    expect(await taskCount(s.id)).toBe(1);
    const held = (await t.request("GET", `/schedule/${s.id}`)).body;
    expect(held.pending_occurrence_at).not.toBeNull();

    await finishTasks(s.id);
    await waitFor("the held occurrence", async () => ((await taskCount(s.id)) >= 2 ? true : undefined), 2500);
    await t.request("POST", `/schedule/${s.id}/pause`);
    const [, released] = await firings(t.app.db, s.id);
    expect(released).toMatchObject({ trigger: expect.stringMatching(/queued|timeline/) });
    expect(released!.missed_count).toBeGreaterThanOrEqual(1);
    expect(await taskCount(s.id)).toBe(2);
  }, 15_000);
});

describe("delete", () => {
  it("stops the firings and keeps the tasks it created", async () => {
    await startScheduler();
    const s = await createSchedule({ name: "noop_delete", interval: 1, overlap: "allow" });
    await waitFor("two firings", async () => ((await taskCount(s.id)) >= 2 ? true : undefined), 4000);
    expect((await t.request("DELETE", `/schedule/${s.id}`)).status).toBe(204);
    const atDelete = await taskCount(s.id);
    await sleep(2200);
    expect(await taskCount(s.id)).toBe(atDelete);
    const kept = await t.app.db.rows("SELECT id FROM tasks WHERE schedule_id = $1", [s.id]);
    expect(kept).toHaveLength(atDelete);
  }, 10_000);
});

describe("a template that no longer makes a task", () => {
  it("records the error on the schedule and moves on along the timeline, without blocking other schedules", async () => {
    const broken = await createSchedule({ name: "noop_broken", interval: 60 });
    const healthy = await createSchedule({ name: "noop_healthy", interval: 60, overlap: "allow" });
    // As if task_plugins.yaml lost the mapping after the schedule was made.
    await t.app.db.query("UPDATE schedules SET name = 'unmapped_now' WHERE id = $1", [broken.id]);
    const at = new Date(Math.max(Date.parse(broken.next_run_at), Date.parse(healthy.next_run_at)) + 1000);
    const outcomes = new Map<string, FireOutcome>();
    await fireDueSchedules(
      t.app.schedules,
      { plugins: t.app.plugins, config: t.app.config.app, now: () => at },
      (id, outcome) => outcomes.set(id, outcome),
    );
    expect(outcomes.get(broken.id)).toMatchObject({
      kind: "failed",
      error: expect.stringMatching(/no plugin/),
    });
    expect(outcomes.get(healthy.id)).toMatchObject({ kind: "fired" });
    const view = (await t.request("GET", `/schedule/${broken.id}`)).body;
    expect(view.last_error).toMatch(/no plugin is mapped to task name "unmapped_now"/);
    expect(Date.parse(view.next_run_at)).toBe(Date.parse(broken.next_run_at) + 60_000);
    expect(await taskCount(broken.id)).toBe(0);
    for (const s of [broken, healthy]) await t.request("DELETE", `/schedule/${s.id}`);
  });
});

describe("daylight-saving days, through the scheduler on Postgres", () => {
  /**
   * A 02:30 daily job in Europe/Berlin, created before the change day, with the scheduler's clock
   * stepped every 5 minutes over three days: each day fires exactly once, at 02:30 local time.
   */
  async function firingsAcross(createdAt: string, days: number): Promise<string[]> {
    let clock = new Date(createdAt);
    const deps = { plugins: t.app.plugins, config: t.app.config.app, now: () => clock };
    const schedule = await createScheduleAt(t.app.schedules, { ...deps, runtime: "local" }, "default", {
      name: "noop_dst",
      cron: "30 2 * * *",
      timezone: "Europe/Berlin",
      overlap: "allow",
    });
    const end = clock.getTime() + days * 86_400_000;
    for (; clock.getTime() <= end; clock = new Date(clock.getTime() + 5 * 60_000)) {
      await fireDueSchedules(t.app.schedules, deps);
    }
    await t.request("DELETE", `/schedule/${schedule.id}`);
    const fired = await firings(t.app.db, schedule.id);
    expect(fired.every((f) => f.missed_count === 0 && f.trigger === "timeline")).toBe(true);
    expect(await taskCount(schedule.id)).toBe(fired.length);
    return fired.map((f) => f.scheduled_for);
  }

  it("spring forward (28 March 2027): 02:30 does not exist that day, and the job runs once", async () => {
    expect(await firingsAcross("2027-03-26T12:00:00Z", 3)).toEqual([
      "2027-03-27T01:30:00.000Z", // 02:30 CET
      "2027-03-28T01:30:00.000Z", // the change day: once (03:30 CEST)
      "2027-03-29T00:30:00.000Z", // 02:30 CEST
    ]);
  });

  it("fall back (31 October 2027): 02:30 happens twice that day, and the job runs once", async () => {
    expect(await firingsAcross("2027-10-29T12:00:00Z", 3)).toEqual([
      "2027-10-30T00:30:00.000Z", // 02:30 CEST
      "2027-10-31T01:30:00.000Z", // the change day: once, on the second pass (02:30 CET)
      "2027-11-01T01:30:00.000Z", // 02:30 CET
    ]);
  });
});
