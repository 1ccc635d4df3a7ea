import { QUEUE_DISPATCH, type TmeEvent } from "../../core/events/event.js";
import {
  type OutboxMessage,
  type OutboxStore,
  outboxRetryDelayMs,
  type PublishFailure,
} from "../../core/outbox/outbox.js";
import type { Db, Queryable } from "./database.js";

/** NOTIFY channel that wakes the local relay when outbox rows are written. */
export const OUTBOX_CHANNEL = "tme_outbox";

interface OutboxRow {
  id: number;
  event_id: string;
  namespace: string;
  type: string;
  payload: unknown;
  attempts: number;
}

export class PostgresOutboxStore implements OutboxStore {
  constructor(private readonly db: Db) {}

  relayBatch(
    limit: number,
    fn: (messages: OutboxMessage[]) => Promise<{ failed: PublishFailure[] }>,
  ): Promise<{ published: number; failed: number }> {
    // The rows stay locked while they are published, so a second relay skips them; a relay
    // that dies mid-batch rolls back and the rows are published again (at-least-once). A
    // published row is deleted in the same transaction: nothing reads it afterwards (the task's
    // history is task_events), and a kept row would cost about 4 KB per task for ever.
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<OutboxRow>(
        `SELECT id, event_id, namespace, type, payload, attempts FROM outbox
         WHERE published_at IS NULL AND next_attempt_at <= now()
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      );
      if (rows.length === 0) return { published: 0, failed: 0 };
      const messages = rows.map((r) => ({
        id: r.id,
        eventId: r.event_id,
        namespace: r.namespace,
        type: r.type,
        payload: r.payload,
        attempts: r.attempts,
      }));
      const { failed } = await fn(messages);
      const failedIds = new Set(failed.map((f) => f.id));
      const published = rows.filter((r) => !failedIds.has(r.id)).map((r) => r.id);
      if (published.length > 0) {
        await tx.query("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [published]);
      }
      for (const failure of failed) {
        const attempts = (rows.find((r) => r.id === failure.id)?.attempts ?? 0) + 1;
        await tx.query(
          `UPDATE outbox SET attempts = $2, last_error = $3,
             next_attempt_at = now() + make_interval(secs => $4::double precision / 1000) WHERE id = $1`,
          [failure.id, attempts, failure.error.slice(0, 2000), outboxRetryDelayMs(attempts)],
        );
      }
      return { published: published.length, failed: failed.length };
    });
  }
}

/**
 * The event an outbox row holds, by event id: the whole event when the bus could carry only a
 * reference to it (eventReference in adapters/aws/eventbridge-bus.ts).
 */
export async function readOutboxEvent(db: Queryable, eventId: string): Promise<TmeEvent | undefined> {
  const { rows } = await db.query<{ payload: TmeEvent }>(
    "SELECT payload FROM outbox WHERE event_id = $1 AND type <> $2",
    [eventId, QUEUE_DISPATCH],
  );
  return rows[0]?.payload;
}
