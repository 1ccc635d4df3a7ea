import { newId } from "../../core/ids.js";
import type { AttemptOutcome, AttemptResult } from "../../core/webhooks/deliver.js";
import {
  type ClaimedDelivery,
  DELIVERY_STATUSES,
  type Delivery,
  type DeliveryListFilter,
  type DeliveryStatus,
  type DeliveryStore,
  type DispatchableEvent,
  type RedeliveryFilter,
} from "../../core/webhooks/delivery-store.js";
import type { WebhookPayload } from "../../core/webhooks/payload.js";
import { orderKeyOf, subscriptionMatches } from "../../core/webhooks/subscription.js";
import type { Db, Queryable } from "./database.js";
import { type KeysetPage, keysetPage } from "./keyset.js";
import { readOutboxEvent } from "./outbox-repository.js";
import { subscriptionsForEvents } from "./subscription-repository.js";
import { traceContextOf } from "./task-repository.js";

/** NOTIFY channel that wakes local delivery workers when an attempt becomes due. */
export const DELIVERY_CHANNEL = "tme_delivery";

/** A deliveries row (the core's Delivery), by its table's name. */
export type DeliveryRow = Delivery;
export type { ClaimedDelivery, DeliveryStatus, DispatchableEvent };
export { DELIVERY_STATUSES };

const COLUMNS = `id, namespace, subscription_id, event_id, event_type, attempt, chain_attempt, trigger, status,
  response_status, latency_ms, response_snippet, error, next_attempt_at, created_at, started_at, finished_at`;

/**
 * Fans one event out: a pending first attempt for every matching subscription, and the event
 * kept for retries. Safe to run twice for one event (buses deliver at least once): the unique
 * (subscription, event, attempt) makes the second run insert nothing.
 */
export async function fanOutEvent(db: Db, event: DispatchableEvent): Promise<number> {
  const [outcome] = await fanOutEvents(db, [event]);
  if (outcome!.status === "rejected") throw outcome!.reason;
  return outcome!.value;
}

/**
 * Fans a batch of events out (as fanOutEvent), with one query for the candidate subscriptions
 * of all of them: most events match none, and a query each was most of the round trips the
 * local relay made under load. One outcome per event, in order: an event whose writes fail
 * fails alone.
 */
export async function fanOutEvents(
  db: Db,
  events: readonly DispatchableEvent[],
): Promise<Array<PromiseSettledResult<number>>> {
  const candidates = await subscriptionsForEvents(db, events);
  const outcomes: Array<PromiseSettledResult<number>> = [];
  // One after another, as the events came: a burst that matches takes one connection, not all.
  for (const event of events) {
    const matching = candidates.filter(
      (s) => s.namespace === event.namespace && subscriptionMatches(s, event),
    );
    try {
      const created = matching.length === 0 ? 0 : await writeFanOut(db, event, matching);
      outcomes.push({ status: "fulfilled", value: created });
    } catch (reason) {
      outcomes.push({ status: "rejected", reason });
    }
  }
  return outcomes;
}

function writeFanOut(
  db: Db,
  event: DispatchableEvent,
  matching: ReadonlyArray<{ id: string }>,
): Promise<number> {
  return db.transaction(async (tx) => {
    await storeEvent(tx, event);
    const { rowCount } = await tx.query(
      `INSERT INTO deliveries (id, namespace, subscription_id, event_id, event_type, attempt, chain_attempt, status,
         next_attempt_at, order_key, occurred_at, chain_started_at, trigger)
       SELECT unnest($1::text[]), $2, unnest($3::text[]), $4, $5, 1, 1, 'pending', now(), $6, $7, now(), 'event'
       ON CONFLICT (subscription_id, event_id, attempt) DO NOTHING`,
      [
        matching.map(() => newId("dlv")),
        event.namespace,
        matching.map((s) => s.id),
        event.id,
        event.type,
        orderKeyOf(event),
        event.occurred_at,
      ],
    );
    await tx.query("SELECT pg_notify($1, '')", [DELIVERY_CHANNEL]);
    return rowCount ?? 0;
  });
}

async function storeEvent(tx: Queryable, event: DispatchableEvent): Promise<void> {
  const payload: WebhookPayload = {
    id: event.id,
    type: event.type,
    occurred_at: event.occurred_at,
    data: event.data,
  };
  await tx.query(
    `INSERT INTO webhook_events (event_id, namespace, type, payload, occurred_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (event_id) DO NOTHING`,
    [event.id, event.namespace, event.type, JSON.stringify(payload), event.occurred_at],
  );
}

// Any constant: claims from all processes take turns on it, so per-endpoint counts are exact.
const CLAIM_LOCK_KEY = 7_364_005;

/**
 * Claims due attempts for one worker. Per subscription, at most `perEndpoint` attempts are in
 * flight (claimed and unexpired) across all processes, so one slow endpoint only ever occupies
 * its own slots. An attempt waits while an earlier event about the same task is still pending
 * for the same subscription: a task's events arrive in order.
 */
export async function claimDueDeliveries(
  db: Db,
  options: { workerId: string; limit: number; perEndpoint: number; claimSeconds: number },
): Promise<ClaimedDelivery[]> {
  if (options.limit <= 0) return [];
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [CLAIM_LOCK_KEY]);
    const { rows } = await tx.query<ClaimedDelivery>(
      `WITH in_flight AS (
         SELECT subscription_id, count(*) AS n FROM deliveries
         WHERE status = 'pending' AND claimed_until > now() GROUP BY subscription_id
       ), due AS (
         SELECT d.id, d.subscription_id,
                row_number() OVER (PARTITION BY d.subscription_id ORDER BY d.occurred_at, d.seq) AS rank
         FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= now()
           AND (d.claimed_until IS NULL OR d.claimed_until <= now())
           AND s.enabled AND s.deleted_at IS NULL
           AND NOT EXISTS (
             SELECT 1 FROM deliveries e
             WHERE e.subscription_id = d.subscription_id AND e.status = 'pending'
               AND e.order_key = d.order_key AND (e.occurred_at, e.seq) < (d.occurred_at, d.seq))
       ), chosen AS (
         SELECT due.id FROM due LEFT JOIN in_flight f USING (subscription_id)
         WHERE due.rank <= $3 - coalesce(f.n, 0)
         ORDER BY due.rank LIMIT $2
       )
       UPDATE deliveries d SET claimed_by = $1, claimed_until = now() + make_interval(secs => $4), started_at = now()
       FROM chosen, subscriptions s, webhook_events w
       WHERE d.id = chosen.id AND s.id = d.subscription_id AND w.event_id = d.event_id
       RETURNING d.id, d.namespace, d.subscription_id, d.event_id, d.event_type, d.attempt, d.chain_attempt,
         coalesce(d.chain_started_at, d.created_at) AS chain_started_at, d.trigger, d.order_key, d.occurred_at,
         w.payload, s.callback_url, s.format, s.auth_type, s.auth_username, s.auth_secret, s.previous_secret,
         s.previous_secret_expires_at`,
      [options.workerId, options.limit, options.perEndpoint, options.claimSeconds],
    );
    return rows;
  });
}

/** When the next pending attempt falls due (to sleep until then), if any is waiting. */
export async function nextDueAt(db: Db): Promise<Date | undefined> {
  const rows = await db.rows<{ at: Date | null }>(
    `SELECT min(next_attempt_at) AS at FROM deliveries WHERE status = 'pending'`,
  );
  return rows[0]?.at ?? undefined;
}

/**
 * Records the attempt and what follows: the next pending attempt when retrying, and the
 * endpoint's health: failing_since starts at the first failure and clears on a success; an
 * endpoint failing for longer than `disableAfterMs`, or answering 410, is disabled.
 */
export async function recordAttempt(
  db: Db,
  claimed: ClaimedDelivery,
  workerId: string,
  result: AttemptResult,
  outcome: AttemptOutcome,
  options: { disableAfterMs: number; snippetChars?: number },
): Promise<{ recorded: boolean; disabled?: "gone" | "failing" }> {
  return db.transaction(async (tx) => {
    const { rowCount } = await tx.query(
      `UPDATE deliveries SET status = $3, response_status = $4, latency_ms = $5, response_snippet = $6, error = $7,
         next_attempt_at = $8, finished_at = now(), claimed_by = NULL, claimed_until = NULL
       WHERE id = $1 AND status = 'pending' AND claimed_by = $2`,
      [
        claimed.id,
        workerId,
        outcome.status,
        result.status ?? null,
        result.latencyMs,
        result.snippet ? result.snippet.slice(0, options.snippetChars ?? 1024) : null,
        outcome.error?.slice(0, 2000) ?? null,
        outcome.nextAttemptAt ?? null,
      ],
    );
    // Lost the claim (it expired and another worker took the attempt): that worker records it.
    if (!rowCount) return { recorded: false };
    if (outcome.status === "retrying") {
      await tx.query(
        `INSERT INTO deliveries (id, namespace, subscription_id, event_id, event_type, attempt, chain_attempt, status,
           next_attempt_at, order_key, occurred_at, chain_started_at, trigger)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11, 'retry')
         ON CONFLICT (subscription_id, event_id, attempt) DO NOTHING`,
        [
          newId("dlv"),
          claimed.namespace,
          claimed.subscription_id,
          claimed.event_id,
          claimed.event_type,
          claimed.attempt + 1,
          claimed.chain_attempt + 1,
          outcome.nextAttemptAt,
          claimed.order_key,
          claimed.occurred_at,
          claimed.chain_started_at,
        ],
      );
    }
    if (claimed.trigger === "test") return { recorded: true };
    if (outcome.status === "succeeded") {
      await tx.query(
        `UPDATE subscriptions SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`,
        [claimed.subscription_id],
      );
      return { recorded: true };
    }
    if (outcome.disable === "gone") {
      await tx.query(
        `UPDATE subscriptions SET enabled = false, disabled_cause = 'gone', disabled_at = now(), updated_at = now(),
           disabled_reason = 'the endpoint answered 410 Gone' WHERE id = $1 AND enabled`,
        [claimed.subscription_id],
      );
      return { recorded: true, disabled: "gone" };
    }
    const { rows } = await tx.query<{ disabled: boolean }>(
      `UPDATE subscriptions SET failing_since = coalesce(failing_since, now()),
         enabled = CASE WHEN failing_since < now() - make_interval(secs => $2) THEN false ELSE enabled END,
         disabled_cause = CASE WHEN failing_since < now() - make_interval(secs => $2) THEN 'failing' ELSE disabled_cause END,
         disabled_at = CASE WHEN failing_since < now() - make_interval(secs => $2) THEN now() ELSE disabled_at END,
         disabled_reason = CASE WHEN failing_since < now() - make_interval(secs => $2)
           THEN 'every delivery failed since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
           ELSE disabled_reason END
       WHERE id = $1 AND enabled
       RETURNING NOT enabled AS disabled`,
      [claimed.subscription_id, options.disableAfterMs / 1000],
    );
    return { recorded: true, disabled: rows[0]?.disabled ? "failing" : undefined };
  });
}

/** One stored test ping, claimed at once by the caller that will send it. */
export async function insertTestDelivery(
  db: Db,
  namespace: string,
  subscriptionId: string,
  event: DispatchableEvent,
  workerId: string,
): Promise<string> {
  const id = newId("dlv");
  await db.transaction(async (tx) => {
    await storeEvent(tx, event);
    await tx.query(
      `INSERT INTO deliveries (id, namespace, subscription_id, event_id, event_type, attempt, chain_attempt, status,
         next_attempt_at, occurred_at, chain_started_at, trigger, claimed_by, claimed_until, started_at)
       VALUES ($1, $2, $3, $4, $5, 1, 1, 'pending', now(), $6, now(), 'test', $7, now() + interval '1 minute', now())`,
      [id, namespace, subscriptionId, event.id, event.type, event.occurred_at, workerId],
    );
  });
  return id;
}

/** A claimed delivery by id (the test ping sends its own attempt straight away). */
export async function loadClaimed(db: Db, id: string): Promise<ClaimedDelivery | undefined> {
  const rows = await db.rows<ClaimedDelivery>(
    `SELECT d.id, d.namespace, d.subscription_id, d.event_id, d.event_type, d.attempt, d.chain_attempt,
       coalesce(d.chain_started_at, d.created_at) AS chain_started_at, d.trigger, d.order_key, d.occurred_at,
       w.payload, s.callback_url, s.format, s.auth_type, s.auth_username, s.auth_secret, s.previous_secret,
       s.previous_secret_expires_at
     FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id JOIN webhook_events w ON w.event_id = d.event_id
     WHERE d.id = $1`,
    [id],
  );
  return rows[0];
}

export async function getDelivery(
  db: Queryable,
  namespace: string,
  id: string,
): Promise<DeliveryRow | undefined> {
  const { rows } = await db.query<DeliveryRow>(
    `SELECT ${COLUMNS} FROM deliveries WHERE id = $1 AND namespace = $2`,
    [id, namespace],
  );
  return rows[0];
}

/**
 * Attempts of one subscription, newest first. The status filter "failed" means every final
 * failure: failed and given_up (the dead letters).
 */
export async function listDeliveries(
  db: Queryable,
  subscriptionId: string,
  options: DeliveryListFilter,
): Promise<KeysetPage<DeliveryRow>> {
  const statuses = options.statuses?.flatMap((s) => (s === "failed" ? ["failed", "given_up"] : [s]));
  return keysetPage<DeliveryRow>(
    db,
    {
      columns: COLUMNS,
      from: "deliveries",
      where:
        "subscription_id = $1 AND ($2::text[] IS NULL OR status = ANY($2)) AND ($3::text IS NULL OR event_id = $3)",
      values: [subscriptionId, statuses ?? null, options.eventId ?? null],
      column: "created_at",
    },
    options,
  );
}

/**
 * Starts a new delivery of events to a subscription: a pending attempt numbered after the last,
 * with a fresh retry window. Events that already have a pending attempt are skipped.
 */
export async function redeliver(
  db: Db,
  namespace: string,
  subscriptionId: string,
  eventIds: string[],
): Promise<DeliveryRow[]> {
  if (eventIds.length === 0) return [];
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<DeliveryRow>(
      `INSERT INTO deliveries (id, namespace, subscription_id, event_id, event_type, attempt, chain_attempt, status,
         next_attempt_at, order_key, occurred_at, chain_started_at, trigger)
       SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), $1, $2, last.event_id, last.event_type,
              last.attempt + 1, 1, 'pending', now(), last.order_key, last.occurred_at, now(), 'redeliver'
       FROM (SELECT DISTINCT ON (event_id) event_id, event_type, attempt, order_key, occurred_at
             FROM deliveries WHERE subscription_id = $2 AND event_id = ANY($3::text[])
             ORDER BY event_id, attempt DESC) last
       WHERE NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.subscription_id = $2 AND p.event_id = last.event_id
                         AND p.status = 'pending')
       ON CONFLICT (subscription_id, event_id, attempt) DO NOTHING
       RETURNING ${COLUMNS}`,
      [namespace, subscriptionId, eventIds],
    );
    if (rows.length > 0) await tx.query("SELECT pg_notify($1, '')", [DELIVERY_CHANNEL]);
    return rows;
  });
}

/** Events of a subscription whose latest attempt has one of the statuses, for bulk redelivery. */
export async function eventsToRedeliver(
  db: Queryable,
  subscriptionId: string,
  filter: RedeliveryFilter,
): Promise<string[]> {
  const { rows } = await db.query<{ event_id: string }>(
    `SELECT event_id FROM (
       SELECT DISTINCT ON (event_id) event_id, event_type, status, created_at FROM deliveries
       WHERE subscription_id = $1 ORDER BY event_id, attempt DESC) last
     WHERE status = ANY($2) AND ($3::timestamptz IS NULL OR created_at >= $3)
       AND ($4::timestamptz IS NULL OR created_at < $4) AND ($5::text IS NULL OR event_type = $5)
     ORDER BY created_at LIMIT $6`,
    [
      subscriptionId,
      filter.statuses,
      filter.since ?? null,
      filter.until ?? null,
      filter.eventType ?? null,
      filter.limit,
    ],
  );
  return rows.map((r) => r.event_id);
}

/** The delivery store on `db`: each method is the function of the same job above. */
export function postgresDeliveryStore(db: Db): DeliveryStore {
  return {
    fanOut: (events) => fanOutEvents(db, events),
    storedEvent: (eventId) => readOutboxEvent(db, eventId),
    claimDue: (options) => claimDueDeliveries(db, options),
    nextDueAt: () => nextDueAt(db),
    record: (claimed, workerId, result, outcome, options) =>
      recordAttempt(db, claimed, workerId, result, outcome, options),
    async claimTestPing(namespace, subscriptionId, event, workerId) {
      const id = await insertTestDelivery(db, namespace, subscriptionId, event, workerId);
      return (await loadClaimed(db, id))!;
    },
    get: (namespace, id) => getDelivery(db, namespace, id),
    list: (subscriptionId, filter) => listDeliveries(db, subscriptionId, filter),
    eventsToRedeliver: (subscriptionId, filter) => eventsToRedeliver(db, subscriptionId, filter),
    redeliver: (namespace, subscriptionId, eventIds) => redeliver(db, namespace, subscriptionId, eventIds),
    traceContextOf: (taskId) => traceContextOf(db, taskId),
  };
}
