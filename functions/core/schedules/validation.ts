import { type ErrorDetail, Unprocessable, ValidationFailed } from "../errors.js";
import { cronExpression, rateExpression } from "./eventbridge-expression.js";
import type { Timing } from "./schedule.js";
import { cronFor, nextOccurrence } from "./timeline.js";

/** The schedules.interval_seconds column is a Postgres integer (about 68 years). */
export const MAX_INTERVAL_SECONDS = 2_147_483_647;

/** True for names the runtime's time zone database knows (IANA: "Europe/Berlin", "UTC"). */
export function isKnownTimezone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks a 5-field cron expression with croner and returns croner's reason when it refuses.
 * `?` is refused: croner reads it as "the current value" (a pattern that changes with the day
 * it was saved), not as the "any" of other cron dialects.
 */
export function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) {
    return `must have 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  }
  if (expression.includes("?")) return `"?" is not supported; use "*"`;
  try {
    cronFor(expression.trim(), "UTC");
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/^CronPattern: /, "");
  }
}

/**
 * A timing with no occurrence left is refused rather than stored as a schedule that is finished
 * the moment it exists: a cron that matches no date ("0 0 31 2 *"), or an end_at before the first
 * occurrence.
 */
function neverFires(timing: Timing, now: Date): ErrorDetail | undefined {
  if (nextOccurrence(timing, now) !== null) return undefined;
  // Only end_at or the cron itself can end a timeline (an interval always has a next instant).
  const unbounded = timing.end_at === null ? null : nextOccurrence({ ...timing, end_at: null }, now);
  if (unbounded !== null) {
    return {
      path: "end_at",
      message: `is before the first occurrence (${unbounded.toISOString()}): the schedule would never fire`,
    };
  }
  const after = timing.start_at && timing.start_at > now ? "start_at" : "now";
  return { path: "cron", message: `matches no date after ${after}: the schedule would never fire` };
}

/**
 * The rules of a schedule's timing: exactly one of interval and cron, a cron croner accepts,
 * a known time zone, end_at after start_at and not already past, at least one occurrence left.
 * In the cloud runtime, also what EventBridge Scheduler can express (422, saying why).
 */
export function validateTiming(timing: Timing, now: Date, runtime: "local" | "cloud"): void {
  const details: ErrorDetail[] = [];
  if ((timing.interval_seconds === null) === (timing.cron === null)) {
    details.push({ path: "interval", message: "give exactly one of interval and cron" });
  }
  if (
    timing.interval_seconds !== null &&
    !(
      Number.isInteger(timing.interval_seconds) &&
      timing.interval_seconds >= 1 &&
      timing.interval_seconds <= MAX_INTERVAL_SECONDS
    )
  ) {
    details.push({
      path: "interval",
      message: `must be an integer from 1 to ${MAX_INTERVAL_SECONDS} (seconds)`,
    });
  }
  if (timing.cron !== null) {
    const problem = cronProblem(timing.cron);
    if (problem) details.push({ path: "cron", message: problem });
  }
  if (!isKnownTimezone(timing.timezone)) {
    details.push({
      path: "timezone",
      message: `unknown time zone "${timing.timezone}" (use an IANA name such as Europe/Berlin)`,
    });
  } else if (timing.cron === null && timing.timezone !== "UTC") {
    details.push({ path: "timezone", message: "applies only to cron schedules; an interval counts seconds" });
  }
  if (timing.start_at && timing.end_at && timing.end_at <= timing.start_at) {
    details.push({ path: "end_at", message: "must be after start_at" });
  }
  if (timing.end_at && timing.end_at <= now) {
    details.push({ path: "end_at", message: "is in the past: the schedule would never fire" });
  }
  if (details.length === 0) {
    const never = neverFires(timing, now);
    if (never) details.push(never);
  }
  if (details.length > 0) {
    throw new ValidationFailed(
      `invalid schedule: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`,
      details,
    );
  }
  if (runtime === "cloud") {
    const cloud =
      timing.interval_seconds !== null
        ? rateExpression(timing.interval_seconds)
        : cronExpression(timing.cron!);
    if ("unsupported" in cloud) {
      const path = timing.interval_seconds !== null ? "interval" : "cron";
      throw new Unprocessable(`not possible in the cloud runtime: ${cloud.unsupported}`, [
        { path, message: cloud.unsupported },
      ]);
    }
  }
}
