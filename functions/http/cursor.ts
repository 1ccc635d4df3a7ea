import * as z from "zod";
import { ValidationFailed } from "../core/errors.js";
import type { Keyset } from "../core/paging.js";

/**
 * The one cursor format of every list (X-Next-Cursor): opaque to callers, base64url JSON,
 * checked against a schema on the way back in. Lists ordered by a timestamp put it in the
 * cursor in microseconds, Postgres's own precision: a millisecond cursor would skip rows
 * created within the same millisecond as a page's last row.
 */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

function badCursor(): ValidationFailed {
  return new ValidationFailed("invalid query: cursor: not a cursor this API issued", [
    { path: "query.cursor", message: "pass the X-Next-Cursor value of the previous page unchanged" },
  ]);
}

export function decodeCursor<T>(cursor: string, schema: z.ZodType<T>): T {
  try {
    const parsed = schema.safeParse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
    if (parsed.success) return parsed.data;
  } catch {}
  throw badCursor();
}

/** The `cursor` query parameter of every list, as the caller sends it back. */
export const CursorQuery = z
  .string()
  .max(1000)
  .optional()
  .meta({ description: "From the previous page's X-Next-Cursor" });

/**
 * A keyset cursor as it travels: [timestamp in microseconds, id], the page's last row (the lists
 * newest first: tasks, schedules, subscriptions, deliveries, keys, alerts, audit).
 */
const KeysetCursorSchema = z
  .tuple([z.number().int().safe(), z.string().min(1).max(200)])
  .transform(([micros, id]): Keyset => ({ micros, id }));

/** The lists in sequence order (a task's runs and events): the last row's sequence number. */
const SeqCursorSchema = z.number().int().min(0).safe();

/** The lists in name order (task types): the last row's name. */
const NameCursorSchema = z.string().min(1).max(200);

export function decodeKeysetCursor(cursor: string | undefined): Keyset | undefined {
  return cursor === undefined ? undefined : decodeCursor(cursor, KeysetCursorSchema);
}

export function decodeSeqCursor(cursor: string | undefined): number | undefined {
  return cursor === undefined ? undefined : decodeCursor(cursor, SeqCursorSchema);
}

export function decodeNameCursor(cursor: string | undefined): string | undefined {
  return cursor === undefined ? undefined : decodeCursor(cursor, NameCursorSchema);
}

/**
 * The X-Next-Cursor header, present only when there is a next page: a keyset travels as
 * [micros, id], a sequence number or a name as itself.
 */
export function nextCursorHeader(next: Keyset | number | string | undefined): Record<string, string> {
  if (next === undefined) return {};
  return { "X-Next-Cursor": encodeCursor(typeof next === "object" ? [next.micros, next.id] : next) };
}

/** `limit` and `cursor`, the query of every paged list that takes no other filter of its own. */
export const PageQueryFields = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: CursorQuery,
};
