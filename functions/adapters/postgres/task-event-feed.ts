import type { Queryable } from "./database.js";

export interface FeedEvent {
  /** task_events.id, as text (bigserial). */
  seq: string;
  id: string;
  namespace: string;
  task_id: string;
  type: string;
  data: unknown;
  occurred_at: string;
}

/** The newest task event's position: a stream starts after it. */
export async function latestTaskEventSeq(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ seq: string }>(
    "SELECT coalesce(max(id), 0)::text AS seq FROM task_events",
  );
  return rows[0]!.seq;
}

/** Task events after `afterSeq` in these namespaces, in commit-id order (the primary key). */
export async function taskEventsAfter(
  db: Queryable,
  afterSeq: string,
  namespaces: string[],
  limit: number,
): Promise<FeedEvent[]> {
  const { rows } = await db.query<FeedEvent>(
    `SELECT id::text AS seq, event_id AS id, namespace, task_id, type, data,
            to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS occurred_at
       FROM task_events WHERE id > $1::bigint AND namespace = ANY($2::text[])
      ORDER BY id LIMIT $3`,
    [afterSeq, namespaces, limit],
  );
  return rows;
}
