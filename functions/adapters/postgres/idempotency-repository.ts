import type { Queryable } from "./database.js";

/** Idempotency-Key records are replayed for 24 hours (API.md); after that they are only weight. */
export const IDEMPOTENCY_WINDOW_HOURS = 24;

/** Deletes records past their window, in batches; returns how many went. */
export async function pruneExpiredIdempotencyKeys(db: Queryable, batch = 5000): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await db.query(
      `DELETE FROM idempotency_keys WHERE ctid IN (
         SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1) LIMIT $2)`,
      [IDEMPOTENCY_WINDOW_HOURS, batch],
    );
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < batch) return total;
  }
}
