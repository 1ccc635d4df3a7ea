import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppContext } from "../../functions/context.js";
import type { BackgroundService } from "../../functions/local/runtime.js";
import { schedulerService } from "../../functions/local/scheduler-service.js";
import { firings } from "../helpers/firings.js";
import { withTestApp } from "../helpers/test-app.js";
import { sleep, waitFor } from "../helpers/wait.js";

/**
 * The scheduler's clock jumps (NTP stepping a drifted clock, a VM resumed after an hour, a
 * laptop waking): the loop runs for real on a real database, only its clock is injected.
 */
let offsetMs = 0;
let scheduler: BackgroundService;

const t = withTestApp();
beforeAll(async () => {
  const app: AppContext = { ...t.app, now: () => new Date(Date.now() + offsetMs) };
  scheduler = schedulerService(app, { maxSleepMs: 200 });
  await scheduler.start();
});
afterAll(async () => {
  await scheduler.stop();
});

describe("a scheduler clock jump", () => {
  it("forward one hour: one catch-up firing per schedule, counting what it folded in; backward: nothing fires twice", async () => {
    const specs = [
      { name: "noop_every_minute", interval: 60, overlap: "allow" },
      { name: "noop_every_5_minutes", cron: "*/5 * * * *", overlap: "allow" },
      { name: "noop_every_10_seconds", interval: 10, overlap: "allow" },
    ];
    const schedules: Array<{ id: string; next_run_at: string }> = [];
    for (const body of specs) {
      const res = await t.request("POST", "/schedule", { body });
      expect(res.status).toBe(201);
      schedules.push(res.body);
    }
    await sleep(500);
    for (const s of schedules) expect(await firings(t.app.db, s.id)).toEqual([]);

    const jumpedFrom = Date.now();
    offsetMs = 60 * 60 * 1000;
    await waitFor(
      "one firing of each schedule after the jump",
      async () => {
        for (const s of schedules) if ((await firings(t.app.db, s.id)).length === 0) return undefined;
        return true;
      },
      10_000,
    );
    const caughtUpMs = Date.now() - jumpedFrom;
    // Long enough for a loop that fires each missed occurrence to have fired several.
    await sleep(1500);
    const now = Date.now() + offsetMs;
    const afterJump = await Promise.all(schedules.map((s) => firings(t.app.db, s.id)));
    for (const [i, fired] of afterJump.entries()) {
      const period = [60_000, 300_000, 10_000][i]!;
      // The 10-second schedule may also have reached its next occurrence in the wait above.
      const timelineFirings = fired.slice(1);
      expect(fired.length, specs[i]!.name).toBeLessThanOrEqual(period === 10_000 ? 2 : 1);
      const catchUp = fired[0]!;
      // The catch-up is the latest occurrence that was due; the ones before it are counted, not run.
      expect(Date.parse(catchUp.scheduled_for)).toBeLessThanOrEqual(now);
      expect(Date.parse(catchUp.scheduled_for)).toBeGreaterThan(now - period - 2000);
      const expectedMissed = Math.floor(
        (Date.parse(catchUp.scheduled_for) - Date.parse(schedules[i]!.next_run_at)) / period,
      );
      expect(catchUp.missed_count, specs[i]!.name).toBe(expectedMissed);
      expect(catchUp.missed_count).toBeGreaterThanOrEqual(period === 300_000 ? 11 : 59);
      for (const f of timelineFirings) expect(f.missed_count).toBe(0);
    }
    const views = await Promise.all(schedules.map((s) => t.request("GET", `/schedule/${s.id}`)));
    for (const view of views) expect(Date.parse(view.body.next_run_at)).toBeGreaterThan(now - 1000);

    // The clock steps back to the true time: the occurrences of the hour it "lived" are not
    // fired again, and no schedule falls silent for that hour: each next run comes back to
    // its first occurrence after the true time.
    const countsBefore = afterJump.map((f) => f.length);
    offsetMs = 0;
    const steppedBackAt = Date.now();
    await waitFor(
      "the next runs to come back from the future",
      async () => {
        const rows = await t.app.db.rows<{ n: number }>(
          "SELECT count(*)::int AS n FROM schedules WHERE id = ANY($1) AND next_run_at > now() + interval '5 minutes'",
          [schedules.map((s) => s.id)],
        );
        return rows[0]!.n === 0 ? true : undefined;
      },
      5000,
    );
    const realignedMs = Date.now() - steppedBackAt;
    const afterStepBack = await Promise.all(schedules.map((s) => firings(t.app.db, s.id)));
    expect(afterStepBack.map((f) => f.length)).toEqual(countsBefore);
    const back = await Promise.all(schedules.map((s) => t.request("GET", `/schedule/${s.id}`)));
    for (const [i, view] of back.entries()) {
      const period = [60_000, 300_000, 10_000][i]!;
      expect(Date.parse(view.body.next_run_at) - Date.now()).toBeLessThanOrEqual(period);
    }
    // And the 10-second schedule fires again on the true timeline, once per occurrence.
    await waitFor(
      "the 10-second schedule to fire on the true time",
      async () => ((await firings(t.app.db, schedules[2]!.id)).length > countsBefore[2]! ? true : undefined),
      15_000,
    );
    const resumed = (await firings(t.app.db, schedules[2]!.id)).slice(countsBefore[2]!);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]!.missed_count).toBe(0);
    expect(Math.abs(Date.parse(resumed[0]!.scheduled_for) - Date.now())).toBeLessThan(10_000);
    console.log(
      `[faults] clock +1 h: catch-up fired ${caughtUpMs} ms after the jump; missed counted ` +
        `${afterJump.map((f) => f[0]!.missed_count).join("/")} (1 min / 5 min / 10 s); ` +
        `clock back: next runs realigned in ${realignedMs} ms, 0 occurrences fired twice`,
    );
  }, 60_000);
});
