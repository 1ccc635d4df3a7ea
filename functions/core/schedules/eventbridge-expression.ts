/**
 * What EventBridge Scheduler can express of a TME timing, as a pure rule: the cloud adapter
 * builds its ScheduleExpression from it, and the API refuses (422) in the cloud what it cannot.
 *
 * EventBridge cron has six fields (minutes hours day-of-month month day-of-week year), numbers
 * days of the week 1-7 from Sunday (standard cron: 0-7 from Sunday, 7 = Sunday again), needs `?`
 * in one of the two day fields, and has no steps in day-of-week. Standard cron fires when EITHER
 * day field matches if both are restricted; EventBridge has no way to say that.
 */
export type CloudExpression = { expression: string } | { unsupported: string };

export const CLOUD_MIN_INTERVAL_SECONDS = 60;

export function rateExpression(intervalSeconds: number): CloudExpression {
  if (intervalSeconds < CLOUD_MIN_INTERVAL_SECONDS) {
    return {
      unsupported: `interval ${intervalSeconds} s is under 60 s: the cloud runtime fires schedules with EventBridge Scheduler, whose finest granularity is one minute (the local runtime accepts it)`,
    };
  }
  const units: Array<[number, string]> = [
    [86_400, "day"],
    [3_600, "hour"],
    [60, "minute"],
  ];
  for (const [seconds, unit] of units) {
    if (intervalSeconds % seconds === 0) {
      const value = intervalSeconds / seconds;
      return { expression: `rate(${value} ${value === 1 ? unit : `${unit}s`})` };
    }
  }
  return {
    unsupported: `interval ${intervalSeconds} s is not a whole number of minutes: EventBridge Scheduler rate schedules count in whole minutes, hours or days`,
  };
}

const DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

function dayNumber(token: string): number | undefined {
  const named = DAY_NAMES.indexOf(token.toUpperCase());
  if (named >= 0) return named;
  if (!/^\d+$/.test(token)) return undefined;
  const n = Number(token);
  return n >= 0 && n <= 7 ? n % 7 : undefined;
}

/** Consecutive EventBridge day numbers (1-7) joined into ranges: 2,3,4,5,6 -> "2-6". */
function compressDays(days: number[]): string {
  const sorted = [...new Set(days)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j + 1;
  }
  return parts.join(",");
}

function convertDayOfWeek(field: string): string | { unsupported: string } {
  if (field.includes("/")) {
    return {
      unsupported: `day-of-week "${field}" uses a step (/), which EventBridge Scheduler does not allow`,
    };
  }
  const items = field.split(",");
  const special = items.filter((item) => /[#L]/i.test(item));
  if (special.length > 0) {
    if (items.length > 1) {
      return {
        unsupported: `day-of-week "${field}" mixes # or L with a list, which EventBridge Scheduler does not allow`,
      };
    }
    const match = /^(\w+?)(#[1-5]|L)$/i.exec(field);
    const day = match ? dayNumber(match[1]!) : undefined;
    if (!match || day === undefined) {
      return { unsupported: `day-of-week "${field}" has a form EventBridge Scheduler cannot express` };
    }
    return `${day + 1}${match[2]!.toUpperCase()}`;
  }
  const days: number[] = [];
  for (const item of items) {
    const range = /^(\w+)-(\w+)$/.exec(item);
    if (range) {
      const from = dayNumber(range[1]!);
      // "5-7" (Friday to Sunday) must keep 7 as the week's end, not wrap to 0.
      const toRaw = range[2]!;
      const to = /^\d+$/.test(toRaw) && Number(toRaw) === 7 ? 7 : dayNumber(toRaw);
      if (from === undefined || to === undefined || to < from) {
        return { unsupported: `day-of-week range "${item}" cannot be expressed for EventBridge Scheduler` };
      }
      for (let d = from; d <= to; d++) days.push((d % 7) + 1);
    } else {
      const day = dayNumber(item);
      if (day === undefined) {
        return { unsupported: `day-of-week "${item}" cannot be expressed for EventBridge Scheduler` };
      }
      days.push(day + 1);
    }
  }
  return compressDays(days);
}

/** `*\/n` is standard cron; EventBridge documents the start-value form `0/n` (1/n for days, months). */
function convertStep(field: string, first: number): string {
  return field.replace(/^\*\//, `${first}/`);
}

/** A 5-field cron expression (already valid for croner) as EventBridge's 6-field cron(...). */
export function cronExpression(cron: string): CloudExpression {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5) return { unsupported: "cron must have 5 fields" };
  const [minute, hour, dayOfMonth, month, dayOfWeek] = fields as [string, string, string, string, string];
  const plain = /^[\d,\-*/]+$/;
  if (!plain.test(minute) || !plain.test(hour)) {
    return {
      unsupported: `minute/hour fields "${minute} ${hour}" use a form EventBridge Scheduler does not allow`,
    };
  }
  if (!/^[\w,\-*/]+$/.test(month) || /L|W|#/i.test(month.replace(/[A-Z]{3}/gi, ""))) {
    return { unsupported: `month "${month}" uses a form EventBridge Scheduler does not allow` };
  }
  if (!/^([\d,\-*/]+|L)$/i.test(dayOfMonth)) {
    return {
      unsupported: `day-of-month "${dayOfMonth}" uses a form EventBridge Scheduler does not allow`,
    };
  }
  const domRestricted = dayOfMonth !== "*";
  const dowRestricted = dayOfWeek !== "*";
  if (domRestricted && dowRestricted) {
    return {
      unsupported:
        "cron restricts both day-of-month and day-of-week: standard cron then fires when either matches, which EventBridge Scheduler cannot express (it needs ? in one of them); split it into two schedules",
    };
  }
  let dow = "?";
  if (dowRestricted) {
    const converted = convertDayOfWeek(dayOfWeek);
    if (typeof converted !== "string") return converted;
    dow = converted;
  }
  const dom = dowRestricted ? "?" : convertStep(dayOfMonth.toUpperCase(), 1);
  const expression = `cron(${convertStep(minute, 0)} ${convertStep(hour, 0)} ${dom} ${convertStep(month.toUpperCase(), 1)} ${dow} *)`;
  return { expression };
}
