import type { z } from "zod";
import { ValidationFailed } from "../core/errors.js";

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
