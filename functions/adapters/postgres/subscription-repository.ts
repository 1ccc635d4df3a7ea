import type {
  NewSubscription,
  Subscription,
  SubscriptionChanges,
  SubscriptionStore,
} from "../../core/webhooks/subscription-store.js";
import type { Db, Queryable } from "./database.js";
import { type Keyset, type KeysetPage, keysetPage } from "./keyset.js";

/** A subscriptions row as stored (the core's Subscription, secrets still sealed). */
export type SubscriptionRow = Subscription;

const COLUMNS = `id, namespace, event_types, callback_url, format, auth_type, auth_username, auth_secret,
  previous_secret, previous_secret_expires_at, filter, enabled, disabled_reason, disabled_cause, disabled_at,
  failing_since, created_at, updated_at`;

export async function insertSubscription(db: Queryable, sub: NewSubscription): Promise<SubscriptionRow> {
  const { rows } = await db.query<SubscriptionRow>(
    `INSERT INTO subscriptions (id, namespace, event_types, callback_url, format, auth_type, auth_username, auth_secret,
       filter, enabled, disabled_cause, disabled_reason, disabled_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
       CASE WHEN $10 THEN NULL ELSE 'manual' END, CASE WHEN $10 THEN NULL ELSE 'created disabled' END,
       CASE WHEN $10 THEN NULL ELSE now() END)
     RETURNING ${COLUMNS}`,
    [
      sub.id,
      sub.namespace,
      sub.event_types,
      sub.callback_url,
      sub.format,
      sub.auth_type,
      sub.auth_username,
      sub.auth_secret,
      JSON.stringify(sub.filter),
      sub.enabled,
    ],
  );
  return rows[0]!;
}

export async function getSubscription(
  db: Queryable,
  namespace: string,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<SubscriptionRow | undefined> {
  const { rows } = await db.query<SubscriptionRow>(
    `SELECT ${COLUMNS} FROM subscriptions WHERE id = $1 AND namespace = $2 AND deleted_at IS NULL
     ${options.forUpdate ? "FOR UPDATE" : ""}`,
    [id, namespace],
  );
  return rows[0];
}

export async function listSubscriptions(
  db: Queryable,
  namespace: string,
  page: { limit: number; after?: Keyset },
): Promise<KeysetPage<SubscriptionRow>> {
  return keysetPage<SubscriptionRow>(
    db,
    {
      columns: COLUMNS,
      from: "subscriptions",
      where: "namespace = $1 AND deleted_at IS NULL",
      values: [namespace],
      column: "created_at",
    },
    page,
  );
}

export async function updateSubscription(
  db: Queryable,
  namespace: string,
  id: string,
  changes: SubscriptionChanges,
): Promise<SubscriptionRow | undefined> {
  const sets: string[] = [];
  const values: unknown[] = [id, namespace];
  for (const [column, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    values.push(column === "filter" ? JSON.stringify(value) : value);
    sets.push(`${column} = $${values.length}`);
  }
  const { rows } = await db.query<SubscriptionRow>(
    `UPDATE subscriptions SET ${[...sets, "updated_at = now()"].join(", ")}
     WHERE id = $1 AND namespace = $2 AND deleted_at IS NULL RETURNING ${COLUMNS}`,
    values,
  );
  return rows[0];
}

/** Soft delete: the row stays for the deliveries that name it; its pending attempts end. */
export async function deleteSubscription(db: Queryable, namespace: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE subscriptions SET deleted_at = now(), enabled = false, disabled_cause = 'manual',
       disabled_reason = 'deleted', disabled_at = now(), auth_secret = NULL, previous_secret = NULL, updated_at = now()
     WHERE id = $1 AND namespace = $2 AND deleted_at IS NULL`,
    [id, namespace],
  );
  if (!rowCount) return false;
  await db.query(
    `UPDATE deliveries SET status = 'failed', error = 'subscription deleted', finished_at = now(),
       claimed_by = NULL, claimed_until = NULL
     WHERE subscription_id = $1 AND status = 'pending'`,
    [id],
  );
  return true;
}

/**
 * A subscription (aliased `s`) that may want an event, as an SQL condition (`namespace` and
 * `type` are SQL expressions): enabled, in the event's namespace, with a pattern that could match
 * its type (the type itself, its family `task.*`, or `*`). Its filter is checked afterwards, in
 * TypeScript (subscriptionMatches).
 */
export function mayWantEvent(namespace: string, type: string): string {
  return `s.namespace = ${namespace} AND s.enabled AND s.deleted_at IS NULL
    AND s.event_types && ARRAY[${type}, split_part(${type}, '.', 1) || '.*', '*']`;
}

/**
 * Candidates for a batch of events, in one query: the subscriptions that may want one of them
 * (mayWantEvent). The caller matches each event to its own (namespace, then filter).
 */
export async function subscriptionsForEvents(
  db: Queryable,
  events: ReadonlyArray<{ namespace: string; type: string }>,
): Promise<Array<Pick<SubscriptionRow, "id" | "namespace" | "event_types" | "filter">>> {
  if (events.length === 0) return [];
  const { rows } = await db.query<Pick<SubscriptionRow, "id" | "namespace" | "event_types" | "filter">>(
    `SELECT s.id, s.namespace, s.event_types, s.filter FROM subscriptions s
     WHERE EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS e(namespace, type)
                   WHERE ${mayWantEvent("e.namespace", "e.type")})`,
    [events.map((e) => e.namespace), events.map((e) => e.type)],
  );
  return rows;
}

export type { NewSubscription, SubscriptionChanges };

/** The subscription store on `db`; modify and delete each run in one transaction. */
export function postgresSubscriptionStore(db: Db): SubscriptionStore {
  return {
    insert: (subscription) => insertSubscription(db, subscription),
    get: (namespace, id) => getSubscription(db, namespace, id),
    list: (namespace, page) => listSubscriptions(db, namespace, page),
    modify: (namespace, id, plan) =>
      db.transaction(async (tx) => {
        const current = await getSubscription(tx, namespace, id, { forUpdate: true });
        if (!current) return undefined;
        return updateSubscription(tx, namespace, id, await plan(current));
      }),
    delete: (namespace, id) => db.transaction((tx) => deleteSubscription(tx, namespace, id)),
  };
}
