import type {
  IdempotencyScope,
  IdempotencyStore,
  StoredResponse,
} from "../../core/idempotency/idempotency-store.js";
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

/** Idempotency-Key records in idempotency_keys; meant to run on a TransactionBoundDb. */
export class PostgresIdempotencyStore implements IdempotencyStore {
  constructor(private readonly db: Queryable) {}

  async lockAndFind(scope: IdempotencyScope): Promise<StoredResponse | undefined> {
    // Postgres text cannot hold NUL, so the parts are joined as a JSON array (unambiguous too).
    await this.db.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [
      JSON.stringify([scope.namespace, scope.route, scope.key]),
    ]);
    const { rows } = await this.db.query<{
      request_hash: string;
      response_status: number;
      response_body: unknown;
    }>(
      `SELECT request_hash, response_status, response_body FROM idempotency_keys
       WHERE namespace = $1 AND route = $2 AND key = $3 AND created_at > now() - make_interval(hours => $4)`,
      [scope.namespace, scope.route, scope.key, IDEMPOTENCY_WINDOW_HOURS],
    );
    const row = rows[0];
    return row && { requestHash: row.request_hash, status: row.response_status, body: row.response_body };
  }

  async record(scope: IdempotencyScope, response: StoredResponse): Promise<void> {
    await this.db.query(
      `INSERT INTO idempotency_keys (namespace, route, key, request_hash, response_status, response_body)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (namespace, route, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
         response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body, created_at = now()`,
      [
        scope.namespace,
        scope.route,
        scope.key,
        response.requestHash,
        response.status,
        JSON.stringify(response.body ?? null),
      ],
    );
  }

  pruneExpired(): Promise<number> {
    return pruneExpiredIdempotencyKeys(this.db);
  }
}
