import { Cron } from "croner";
import type { Timing } from "./schedule.js";

/**
 * A schedule's timeline: the instants it should fire at, computed from its definition alone
 * and never from when it last happened to fire, so firings do not drift.
 *
 * - interval: t0 + k * interval, k >= 0, where t0 is start_at, else the creation instant
 *   (whose own k = 0 occurrence lies in the past the moment the schedule exists, so an
 *   interval schedule without start_at first fires one interval after its creation).
 * - cron: croner's reading of the 5-field expression in the schedule's IANA time zone.
 *   Daylight-saving days (checked in test/unit/schedule-timeline.test.ts): a wall-clock time
 *   that does not exist (02:30 on the spring-forward day in Europe/Berlin) fires once, at
 *   the instant that time has in the old offset (01:30 UTC = 03:30 CEST); a wall-clock time
 *   that happens twice (02:30 on the fall-back day) fires once, on its second pass
 *   (02:30 CET = 01:30 UTC).
 * Both are bounded by start_at (inclusive) and end_at (inclusive).
 */

/** Croner parses a pattern once; the loop asks the same few schedules over and over. */
const cronCache = new Map<string, Cron>();

export function cronFor(expression: string, timezone: string): Cron {
  const key = `${timezone}\u0000${expression}`;
  let cron = cronCache.get(key);
  if (!cron) {
    // No callback: croner only computes instants, it never starts a timer of its own.
    cron = new Cron(expression, { timezone, legacyMode: true });
    if (cronCache.size > 1000) cronCache.clear();
    cronCache.set(key, cron);
  }
  return cron;
}

/** The first occurrence strictly after `after`, or null when the timeline has ended. */
export function nextOccurrence(timing: Timing, after: Date): Date | null {
  let candidate: Date | null;
  if (timing.interval_seconds !== null) {
    const step = timing.interval_seconds * 1000;
    const t0 = (timing.start_at ?? timing.anchor).getTime();
    const k = after.getTime() < t0 ? 0 : Math.floor((after.getTime() - t0) / step) + 1;
    candidate = new Date(t0 + k * step);
  } else if (timing.cron !== null) {
    const cron = cronFor(timing.cron, timing.timezone);
    // croner works in whole seconds and returns the first second strictly after its input,
    // so asking from just before start_at lets an occurrence exactly at start_at count.
    const from = timing.start_at && after < timing.start_at ? new Date(timing.start_at.getTime() - 1) : after;
    candidate = cron.nextRun(from);
  } else {
    throw new Error("a schedule needs an interval or a cron expression");
  }
  if (candidate === null || (timing.end_at !== null && candidate > timing.end_at)) return null;
  return candidate;
}

/** Beyond this many overdue cron occurrences we stop counting them one by one. */
const MAX_COUNTED_OCCURRENCES = 100_000;

/**
 * Given the first due occurrence (a schedule's next_run_at) and the present, the latest
 * occurrence that is due and how many earlier due ones it stands for. After downtime a
 * schedule fires that latest occurrence once; the earlier ones are reported as missed.
 */
export function latestDueOccurrence(
  timing: Timing,
  firstDue: Date,
  now: Date,
): { occurrence: Date; missed: number } {
  if (now <= firstDue) return { occurrence: firstDue, missed: 0 };
  if (timing.interval_seconds !== null) {
    const step = timing.interval_seconds * 1000;
    const limit = timing.end_at && timing.end_at < now ? timing.end_at : now;
    const missed = Math.max(0, Math.floor((limit.getTime() - firstDue.getTime()) / step));
    return { occurrence: new Date(firstDue.getTime() + missed * step), missed };
  }
  let occurrence = firstDue;
  let missed = 0;
  for (;;) {
    const next = nextOccurrence(timing, occurrence);
    if (next === null || next > now || missed >= MAX_COUNTED_OCCURRENCES) break;
    occurrence = next;
    missed++;
  }
  return { occurrence, missed };
}
