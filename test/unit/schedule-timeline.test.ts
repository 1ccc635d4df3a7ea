import { describe, expect, it } from "vitest";
import { planFiring, realignedNextRun } from "../../functions/core/schedules/fire-schedule.js";
import type { Schedule, Timing } from "../../functions/core/schedules/schedule.js";
import { latestDueOccurrence, nextOccurrence } from "../../functions/core/schedules/timeline.js";
import { cronProblem, validateTiming } from "../../functions/core/schedules/validation.js";

const d = (iso: string) => new Date(iso);
const timing = (over: Partial<Timing>): Timing => ({
  interval_seconds: null,
  cron: null,
  timezone: "UTC",
  start_at: null,
  end_at: null,
  anchor: d("2026-01-01T00:00:00Z"),
  ...over,
});

/** Walks the timeline from `from`, returning the next n occurrences. */
function walk(t: Timing, from: Date, n: number): string[] {
  const out: string[] = [];
  let at = from;
  for (let i = 0; i < n; i++) {
    const next = nextOccurrence(t, at);
    if (!next) break;
    out.push(next.toISOString());
    at = next;
  }
  return out;
}

describe("interval timeline", () => {
  it("is anchored on the creation instant: t0 + k * interval, first one interval after creation", () => {
    const t = timing({ interval_seconds: 10, anchor: d("2026-01-01T00:00:00.250Z") });
    expect(walk(t, t.anchor, 3)).toEqual([
      "2026-01-01T00:00:10.250Z",
      "2026-01-01T00:00:20.250Z",
      "2026-01-01T00:00:30.250Z",
    ]);
  });

  it("never drifts: asked late, it answers the next instant of the same timeline, not now + interval", () => {
    const t = timing({ interval_seconds: 10, anchor: d("2026-01-01T00:00:00Z") });
    expect(nextOccurrence(t, d("2026-01-01T00:00:27.900Z"))?.toISOString()).toBe("2026-01-01T00:00:30.000Z");
    expect(nextOccurrence(t, d("2026-01-01T00:00:30.000Z"))?.toISOString()).toBe("2026-01-01T00:00:40.000Z");
  });

  it("starts at start_at itself when given, and stops at end_at inclusive", () => {
    const t = timing({
      interval_seconds: 3600,
      start_at: d("2026-02-01T08:00:00Z"),
      end_at: d("2026-02-01T10:00:00Z"),
    });
    expect(walk(t, d("2026-01-15T00:00:00Z"), 5)).toEqual([
      "2026-02-01T08:00:00.000Z",
      "2026-02-01T09:00:00.000Z",
      "2026-02-01T10:00:00.000Z",
    ]);
  });
});

describe("cron timeline in a time zone", () => {
  const berlin0230 = timing({ cron: "30 2 * * *", timezone: "Europe/Berlin" });

  it("reads the expression in the schedule's zone (02:30 Berlin is 01:30 UTC in winter, 00:30 UTC in summer)", () => {
    expect(walk(berlin0230, d("2026-01-10T12:00:00Z"), 1)).toEqual(["2026-01-11T01:30:00.000Z"]);
    expect(walk(berlin0230, d("2026-07-10T12:00:00Z"), 1)).toEqual(["2026-07-11T00:30:00.000Z"]);
  });

  it("spring forward (29 March 2026, 02:00 -> 03:00): 02:30 does not exist and runs once, at 03:30 CEST", () => {
    // 02:30 read in the old offset (+01:00) is 01:30 UTC, half an hour after the jump.
    expect(walk(berlin0230, d("2026-03-27T12:00:00Z"), 4)).toEqual([
      "2026-03-28T01:30:00.000Z", // 02:30 CET
      "2026-03-29T01:30:00.000Z", // the change day: once
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
      "2026-03-31T00:30:00.000Z",
    ]);
    const onChangeDay = walk(berlin0230, d("2026-03-28T22:00:00Z"), 3).filter((i) =>
      i.startsWith("2026-03-29"),
    );
    expect(onChangeDay).toHaveLength(1);
  });

  it("fall back (25 October 2026, 03:00 -> 02:00): 02:30 happens twice and runs once", () => {
    expect(walk(berlin0230, d("2026-10-23T12:00:00Z"), 4)).toEqual([
      "2026-10-24T00:30:00.000Z", // 02:30 CEST
      "2026-10-25T01:30:00.000Z", // the change day: once, on the second pass (02:30 CET)
      "2026-10-26T01:30:00.000Z", // 02:30 CET
      "2026-10-27T01:30:00.000Z",
    ]);
    // Resumed (or created) at any instant of the change day, never two firings that day. Between
    // the first 02:30 and the switch back (02:30-03:00 CEST) croner counts that day's 02:30 as
    // past; from 02:00 CET on, the second pass is still ahead.
    const firingsOnChangeDay = (from: string) =>
      walk(berlin0230, d(from), 3).filter((i) => i.startsWith("2026-10-25")).length;
    expect(firingsOnChangeDay("2026-10-24T22:00:00Z")).toBe(1);
    expect(firingsOnChangeDay("2026-10-25T00:29:59Z")).toBe(1); // 02:29:59 CEST
    expect(firingsOnChangeDay("2026-10-25T00:45:00Z")).toBe(0); // 02:45 CEST
    expect(firingsOnChangeDay("2026-10-25T01:15:00Z")).toBe(1); // 02:15 CET
  });

  it("honours start_at (inclusive when it is an occurrence) and end_at", () => {
    const t = timing({
      cron: "0 9 * * 1-5",
      timezone: "America/New_York",
      start_at: d("2026-06-01T13:00:00Z"), // Monday 09:00 EDT
      end_at: d("2026-06-03T13:00:00Z"),
    });
    expect(walk(t, d("2026-05-01T00:00:00Z"), 5)).toEqual([
      "2026-06-01T13:00:00.000Z",
      "2026-06-02T13:00:00.000Z",
      "2026-06-03T13:00:00.000Z",
    ]);
  });
});

describe("latestDueOccurrence (missed firings after downtime)", () => {
  it("folds every due interval occurrence into the latest, counting the others as missed", () => {
    const t = timing({ interval_seconds: 60, anchor: d("2026-01-01T00:00:00Z") });
    expect(latestDueOccurrence(t, d("2026-01-01T00:01:00Z"), d("2026-01-01T00:05:30Z"))).toEqual({
      occurrence: d("2026-01-01T00:05:00Z"),
      missed: 4,
    });
  });

  it("does the same for cron", () => {
    const t = timing({ cron: "0 * * * *" });
    expect(latestDueOccurrence(t, d("2026-01-01T03:00:00Z"), d("2026-01-01T07:10:00Z"))).toEqual({
      occurrence: d("2026-01-01T07:00:00Z"),
      missed: 4,
    });
  });

  it("stops at end_at", () => {
    const t = timing({ interval_seconds: 60, end_at: d("2026-01-01T00:03:00Z") });
    expect(latestDueOccurrence(t, d("2026-01-01T00:01:00Z"), d("2026-01-01T01:00:00Z"))).toEqual({
      occurrence: d("2026-01-01T00:03:00Z"),
      missed: 2,
    });
  });
});

function schedule(over: Partial<Schedule>): Schedule {
  return {
    id: "sch_1",
    namespace: "default",
    name: "noop",
    interval_seconds: 60,
    cron: null,
    timezone: "UTC",
    start_at: null,
    end_at: null,
    overlap: "skip",
    enabled: true,
    task_template: {},
    next_run_at: d("2026-01-01T00:01:00Z"),
    last_fired_at: null,
    last_task_id: null,
    fired_count: 0,
    skipped_count: 0,
    last_skipped_at: null,
    pending_occurrence_at: null,
    pending_missed_count: 0,
    last_error: null,
    created_at: d("2026-01-01T00:00:00Z"),
    updated_at: d("2026-01-01T00:00:00Z"),
    deleted_at: null,
    ...over,
  };
}

describe("planFiring", () => {
  const now = d("2026-01-01T00:03:20Z");

  it("fires the latest due occurrence once after downtime and continues on the timeline", () => {
    expect(planFiring(schedule({}), now, false)).toEqual({
      kind: "fire",
      scheduledFor: d("2026-01-01T00:03:00Z"),
      missedCount: 2,
      nextRunAt: d("2026-01-01T00:04:00Z"),
      trigger: "timeline",
    });
  });

  it("does nothing before next_run_at, and nothing while paused", () => {
    expect(planFiring(schedule({}), d("2026-01-01T00:00:59Z"), false)).toEqual({ kind: "none" });
    expect(planFiring(schedule({ enabled: false }), now, false)).toEqual({ kind: "none" });
  });

  it("skip: an unfinished run skips the occurrence; allow: fires anyway", () => {
    expect(planFiring(schedule({ overlap: "skip" }), now, true)).toMatchObject({
      kind: "skip",
      nextRunAt: d("2026-01-01T00:04:00Z"),
    });
    expect(planFiring(schedule({ overlap: "allow" }), now, true)).toMatchObject({ kind: "fire" });
  });

  it("queue: holds the occurrence while the run is unfinished, folds later ones into it, fires it when free", () => {
    const held = planFiring(schedule({ overlap: "queue" }), now, true);
    expect(held).toMatchObject({ kind: "hold", scheduledFor: d("2026-01-01T00:03:00Z"), missedCount: 2 });
    const waiting = schedule({
      overlap: "queue",
      next_run_at: d("2026-01-01T00:04:00Z"),
      pending_occurrence_at: d("2026-01-01T00:03:00Z"),
      pending_missed_count: 2,
    });
    expect(planFiring(waiting, d("2026-01-01T00:03:30Z"), true)).toEqual({ kind: "none" });
    expect(planFiring(waiting, d("2026-01-01T00:03:30Z"), false)).toEqual({
      kind: "fire",
      scheduledFor: d("2026-01-01T00:03:00Z"),
      missedCount: 2,
      nextRunAt: d("2026-01-01T00:04:00Z"),
      trigger: "queued",
    });
    expect(planFiring(waiting, d("2026-01-01T00:04:10Z"), true)).toMatchObject({
      kind: "hold",
      scheduledFor: d("2026-01-01T00:04:00Z"),
      missedCount: 3,
    });
  });

  it("counts an invocation within the early tolerance as the next occurrence's", () => {
    expect(planFiring(schedule({}), d("2026-01-01T00:00:45Z"), false, 30_000)).toMatchObject({
      kind: "fire",
      scheduledFor: d("2026-01-01T00:01:00Z"),
      missedCount: 0,
      nextRunAt: d("2026-01-01T00:02:00Z"),
    });
  });
});

describe("timing validation", () => {
  const now = d("2026-01-01T00:00:00Z");
  const check =
    (t: Partial<Timing>, runtime: "local" | "cloud" = "local") =>
    () =>
      validateTiming(timing(t), now, runtime);

  it("gives croner's reason for a bad cron, and refuses anything but 5 fields and ?", () => {
    expect(cronProblem("61 * * * *")).toMatch(/minute: 61/);
    expect(cronProblem("0 0 * * * *")).toMatch(/5 fields/);
    expect(cronProblem("0 9 ? * 1")).toMatch(/\?/);
    expect(cronProblem("*/5 9-17 * * MON-FRI")).toBeUndefined();
  });

  it("refuses both or neither of interval and cron, unknown zones, end_at before start_at (400)", () => {
    expect(check({})).toThrow(expect.objectContaining({ status: 400 }));
    expect(check({ interval_seconds: 5, cron: "* * * * *" })).toThrow(
      expect.objectContaining({ status: 400 }),
    );
    expect(check({ cron: "* * * * *", timezone: "Mars/Olympus_Mons" })).toThrow(/unknown time zone/);
    expect(
      check({ interval_seconds: 5, start_at: d("2026-02-01T00:00:00Z"), end_at: d("2026-01-15T00:00:00Z") }),
    ).toThrow(/end_at: must be after start_at/);
  });

  it("in the cloud, refuses (422) intervals under a minute and cron EventBridge cannot express, saying why", () => {
    expect(check({ interval_seconds: 30 }, "cloud")).toThrow(
      expect.objectContaining({ status: 422, message: expect.stringMatching(/under 60 s.*one minute/) }),
    );
    expect(check({ interval_seconds: 90 }, "cloud")).toThrow(/whole number of minutes/);
    expect(check({ cron: "0 9 1 * MON" }, "cloud")).toThrow(/both day-of-month and day-of-week/);
    expect(check({ cron: "0 9 * * */2" }, "cloud")).toThrow(/step/);
    expect(check({ interval_seconds: 30 }, "local")).not.toThrow();
    expect(check({ interval_seconds: 120 }, "cloud")).not.toThrow();
  });
});

describe("realignedNextRun (the clock stepped back)", () => {
  // Anchored at 00:00 with a 60 s interval; the clock had run an hour ahead.
  const now = d("2026-01-01T00:03:20Z");

  it("brings a next run computed from a clock that ran ahead back to the first occurrence after now", () => {
    expect(realignedNextRun(schedule({ next_run_at: d("2026-01-01T01:04:00Z") }), now)).toEqual(
      d("2026-01-01T00:04:00Z"),
    );
    const cron = schedule({
      interval_seconds: null,
      cron: "*/5 * * * *",
      next_run_at: d("2026-01-01T01:05:00Z"),
    });
    expect(realignedNextRun(cron, now)).toEqual(d("2026-01-01T00:05:00Z"));
  });

  it("leaves a next run that is already the next occurrence, a future start, a paused or finished schedule", () => {
    expect(realignedNextRun(schedule({ next_run_at: d("2026-01-01T00:04:00Z") }), now)).toBeUndefined();
    const later = d("2026-03-01T00:00:00Z");
    expect(realignedNextRun(schedule({ start_at: later, next_run_at: later }), now)).toBeUndefined();
    expect(
      realignedNextRun(schedule({ enabled: false, next_run_at: d("2026-01-01T01:04:00Z") }), now),
    ).toBeUndefined();
    expect(realignedNextRun(schedule({ next_run_at: null }), now)).toBeUndefined();
  });
});
