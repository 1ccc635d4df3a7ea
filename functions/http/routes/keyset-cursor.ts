import * as z from "zod";
import type { Keyset } from "../../core/paging.js";
import { decodeCursor, encodeCursor } from "../cursor.js";

/** A keyset cursor as it travels: [timestamp in microseconds, id]. */
const KeysetCursorSchema = z
  .tuple([z.number().int().safe(), z.string().min(1).max(200)])
  .transform(([micros, id]): Keyset => ({ micros, id }));

export function decodeKeysetCursor(cursor: string | undefined): Keyset | undefined {
  return cursor === undefined ? undefined : decodeCursor(cursor, KeysetCursorSchema);
}

/** The X-Next-Cursor header, present only when there is a next page. */
export function nextCursorHeader(next: Keyset | undefined): Record<string, string> {
  return next ? { "X-Next-Cursor": encodeCursor([next.micros, next.id]) } : {};
}
