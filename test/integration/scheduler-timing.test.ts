import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackgroundService } from "../../functions/local/runtime.js";
import { schedulerService } from "../../functions/local/scheduler-service.js";
import { firings } from "../helpers/firings.js";
import { withTestApp } from "../helpers/test-app.js";
import { sleep, waitFor } from "../helpers/wait.js";

let scheduler: BackgroundService;
const t = withTestApp();
beforeAll(async () => {
  scheduler = schedulerService(t.app);
  await scheduler.start();
});
afterAll(async () => {
  await scheduler.stop();
});

describe("the local scheduler loop", () => {
  it("fires a 1 s interval on its own timeline: 20 firings, each well within its own second, none twice", async () => {
    // A start half a second out on a whole second, so the timeline is known in advance.
    const start = new Date(Math.ceil((Date.now() + 500) / 1000) * 1000);
    const made = await t.request("POST", "/schedule", {
      body: { name: "noop_tick", interval: 1, start_at: start.toISOString(), overlap: "allow" },
    });
    expect(made.status).toBe(201);
    expect(made.body.next_run_at).toBe(start.toISOString());

    const fired = await waitFor(
      "20 firings",
      async () => {
        const rows = await firings(t.app.db, made.body.id, "scheduled_for");
        return rows.length >= 20 ? rows : undefined;
      },
      30_000,
    );
    await t.request("POST", `/schedule/${made.body.id}/pause`);

    const first20 = fired.slice(0, 20);
    expect(first20.map((f) => f.scheduled_for)).toEqual(
      Array.from({ length: 20 }, (_, k) => new Date(start.getTime() + k * 1000).toISOString()),
    );
    const drifts = first20.map((f) => Date.parse(f.fired_at) - Date.parse(f.scheduled_for));
    const createdDrifts = first20.map((f) => f.task_created_at.getTime() - Date.parse(f.scheduled_for));
    // The timeline is the assertion; lateness is a figure (printed below), bounded here only by
    // half the interval: a 100 ms bound failed at 157 ms on a shared 2-core machine at load 3.5.
    for (const drift of [...drifts, ...createdDrifts]) {
      expect(drift).toBeGreaterThanOrEqual(0);
      expect(drift).toBeLessThan(500);
    }
    expect(first20.every((f) => f.missed_count === 0)).toBe(true);
    console.log(
      `[scheduler-timing] drift per firing over 20 (ms): max ${Math.max(...drifts)}, mean ${(
        drifts.reduce((a, b) => a + b, 0) / drifts.length
      ).toFixed(1)}`,
    );
  }, 45_000);

  it("pause stops firings; resume restarts on the timeline after now, without a burst of the missed ones", async () => {
    const made = (
      await t.request("POST", "/schedule", { body: { name: "noop_pause", interval: 1, overlap: "allow" } })
    ).body;
    await waitFor(
      "a first firing",
      async () => ((await firings(t.app.db, made.id, "scheduled_for")).length >= 1 ? true : undefined),
      5000,
    );
    await t.request("POST", `/schedule/${made.id}/pause`);
    const atPause = (await firings(t.app.db, made.id, "scheduled_for")).length;
    await sleep(2500);
    expect((await firings(t.app.db, made.id, "scheduled_for")).length).toBe(atPause);

    const resumedAt = Date.now();
    const resumed = await t.request("POST", `/schedule/${made.id}/resume`);
    expect(Date.parse(resumed.body.next_run_at)).toBeGreaterThanOrEqual(resumedAt - 5);
    await waitFor(
      "two firings after resume",
      async () =>
        (await firings(t.app.db, made.id, "scheduled_for")).length >= atPause + 2 ? true : undefined,
      5000,
    );
    await t.request("POST", `/schedule/${made.id}/pause`);
    const afterResume = (await firings(t.app.db, made.id, "scheduled_for")).slice(atPause);
    // Nothing for the 2.5 s it was paused: every firing after resume is for an instant after it.
    for (const f of afterResume) {
      expect(Date.parse(f.scheduled_for)).toBeGreaterThanOrEqual(resumedAt - 5);
      expect(f.missed_count).toBe(0);
    }
    // Still the original timeline: created_at + k seconds.
    for (const f of afterResume)
      expect((Date.parse(f.scheduled_for) - Date.parse(made.created_at)) % 1000).toBe(0);
  });
});
