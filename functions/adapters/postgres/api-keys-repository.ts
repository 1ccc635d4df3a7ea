import type { ApiKeyStore, Principal, Scope, StoredApiKey } from "../../core/auth/api-keys.js";
import type { Queryable } from "./database.js";

interface ApiKeyRow {
  id: string;
  name: string;
  namespace: string;
  scopes: Scope[];
}

/** How stale api_keys.last_used_at may get: it is a hint for finding unused keys, not a log. */
const LAST_USED_GRANULARITY_MS = 60_000;

export class PostgresApiKeyStore implements ApiKeyStore {
  /** When this process last stamped each key: spares the UPDATE round trip on most requests. */
  private readonly stampedAt = new Map<string, number>();

  constructor(private readonly db: Queryable) {}

  async insert(key: StoredApiKey): Promise<void> {
    await this.db.query(
      `INSERT INTO api_keys (id, name, namespace, scopes, key_hash, prefix) VALUES ($1, $2, $3, $4, $5, $6)`,
      [key.id, key.name, key.namespace, key.scopes, key.hash, key.prefix],
    );
  }

  async upsert(key: StoredApiKey): Promise<void> {
    await this.db.query(
      `INSERT INTO api_keys (id, name, namespace, scopes, key_hash, prefix) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO UPDATE SET key_hash = EXCLUDED.key_hash, prefix = EXCLUDED.prefix,
         scopes = EXCLUDED.scopes, revoked_at = NULL`,
      [key.id, key.name, key.namespace, key.scopes, key.hash, key.prefix],
    );
  }

  async findByHash(hash: Buffer): Promise<Principal | undefined> {
    const { rows } = await this.db.query<ApiKeyRow>(
      `SELECT id, name, namespace, scopes FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
      [hash],
    );
    const row = rows[0];
    if (!row) return undefined;
    // Coarse on purpose: one write a minute per key, not one per request (nor one round trip).
    const now = Date.now();
    if (now - (this.stampedAt.get(row.id) ?? Number.NEGATIVE_INFINITY) >= LAST_USED_GRANULARITY_MS) {
      this.stampedAt.set(row.id, now);
      this.db
        .query(
          `UPDATE api_keys SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
          [row.id],
        )
        .catch(() => {});
    }
    return { keyId: row.id, name: row.name, namespace: row.namespace, scopes: row.scopes };
  }

  async countActive(): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>(
      `SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL`,
    );
    return rows[0]?.n ?? 0;
  }
}
