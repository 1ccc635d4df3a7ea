import picomatch from "picomatch";
import { EVENT_TYPES } from "../events/event.js";

/** What a subscription may ask for: an exact type, a family wildcard, or everything. */
export const EVENT_PATTERNS = [...EVENT_TYPES, "task.*", "schedule.*", "alert.*", "*"] as const;
export type EventPattern = (typeof EVENT_PATTERNS)[number];

export const AUTH_TYPES = ["none", "bearer", "basic", "hmac"] as const;
export type AuthType = (typeof AUTH_TYPES)[number];

/** Optional narrowing: a glob on the task (or schedule) name, and labels that must all match. */
export interface SubscriptionFilter {
  name?: string;
  labels?: Record<string, string>;
}

/** A subscription as the matching rules see it. */
export interface SubscriptionMatchInput {
  event_types: string[];
  filter: SubscriptionFilter;
}

export function typeMatches(patterns: readonly string[], type: string): boolean {
  return patterns.some(
    (pattern) =>
      pattern === "*" ||
      pattern === type ||
      (pattern.endsWith(".*") && type.startsWith(pattern.slice(0, -1))),
  );
}

/**
 * The object an event is about: data.task, else data.schedule; schedule.paused and
 * schedule.resumed carry the schedule's id and name at the top of data. Alerts carry none.
 */
function subjectOf(data: Record<string, unknown>): { name?: unknown; labels?: unknown } | undefined {
  const candidate = (data.task ?? data.schedule) as { name?: unknown; labels?: unknown } | undefined;
  if (candidate && typeof candidate === "object") return candidate;
  return typeof data.schedule_id === "string" ? data : undefined;
}

const globCache = new Map<string, (name: string) => boolean>();
function glob(pattern: string): (name: string) => boolean {
  let matcher = globCache.get(pattern);
  if (!matcher) {
    matcher = picomatch(pattern, { dot: true });
    if (globCache.size > 1000) globCache.clear();
    globCache.set(pattern, matcher);
  }
  return matcher;
}

/**
 * Whether an event goes to a subscription: its type matches one pattern, and when a filter is
 * set, the task (or schedule) it is about matches it. An event about no task or schedule (an
 * alert) never matches a subscription that filters on name or labels.
 */
export function subscriptionMatches(
  subscription: SubscriptionMatchInput,
  event: { type: string; data: Record<string, unknown> },
): boolean {
  if (!typeMatches(subscription.event_types, event.type)) return false;
  const { name, labels } = subscription.filter;
  if (name === undefined && (labels === undefined || Object.keys(labels).length === 0)) return true;
  const subject = subjectOf(event.data);
  if (!subject) return false;
  if (name !== undefined && !(typeof subject.name === "string" && glob(name)(subject.name))) return false;
  if (labels) {
    const actual = (subject.labels ?? {}) as Record<string, unknown>;
    for (const [key, value] of Object.entries(labels)) if (actual[key] !== value) return false;
  }
  return true;
}

/** The key that orders deliveries: events about one task reach an endpoint in order. */
export function orderKeyOf(event: { data: Record<string, unknown> }): string | null {
  const task = event.data.task as { id?: unknown } | undefined;
  if (task && typeof task.id === "string") return `task:${task.id}`;
  const schedule = event.data.schedule as { id?: unknown } | undefined;
  if (schedule && typeof schedule.id === "string") return `schedule:${schedule.id}`;
  if (typeof event.data.schedule_id === "string") return `schedule:${event.data.schedule_id}`;
  return null;
}
