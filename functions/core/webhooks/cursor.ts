import { ValidationFailed } from "../errors.js";

/** Keyset cursors for lists ordered by (timestamp DESC, id DESC): opaque to callers. */
export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`, "utf8").toString("base64url");
}

export function decodeCursor(cursor: string | undefined): { at: Date; id: string } | undefined {
  if (cursor === undefined) return undefined;
  const [at, id] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  const date = new Date(at ?? "");
  if (!id || Number.isNaN(date.getTime())) {
    throw new ValidationFailed("invalid cursor: pass the X-Next-Cursor value of the previous page", [
      { path: "query.cursor", message: "not a cursor issued by this API" },
    ]);
  }
  return { at: date, id };
}
