import { randomUUID } from "node:crypto";

/**
 * Ids are strings with a type prefix ("tsk_", "sch_", ...) so a reader can tell a task id
 * from a schedule id in a log line; the body is a random UUID without dashes.
 */
export type IdPrefix = "tsk" | "sch" | "sub" | "dlv" | "evt" | "key" | "alr";

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomUUID().replaceAll("-", "")}`;
}

/** The string `id` of a value that may be an object with one (an event's task, a created resource), else null. */
export function idOf(value: unknown): string | null {
  const id = (value as { id?: unknown } | null | undefined)?.id;
  return typeof id === "string" ? id : null;
}
