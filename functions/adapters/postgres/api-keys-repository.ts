import type {
  ApiKeyPage,
  ApiKeyRecord,
  ApiKeyStore,
  Principal,
  Scope,
  StoredApiKey,
} from "../../core/auth/api-keys.js";
import { Database, type Queryable } from "./database.js";
import { GroupCommit } from "./group-commit.js";
import { type Keyset, keysetPage } from "./keyset.js";

interface ApiKeyRow {
  id: string;
  name: string;
  namespace: string;
  scopes: Scope[];
}

/** How stale api_keys.last_used_at may get: it is a hint for finding unused keys, not a log. */
const LAST_USED_GRANULARITY_MS = 60_000;

const RECORD_COLUMNS = `id, name, namespace, scopes, prefix, created_at, expires_at, last_used_at, revoked_at, bootstrap`;

export class PostgresApiKeyStore implements ApiKeyStore {
  /**
   * When this process last stamped each key's last_used_at: spares the UPDATE on most requests.
   * It throttles a write only; it never answers "is this key valid" (that is read every time).
   */
  private readonly stampedAt = new Map<string, number>();
  /** Key checks of concurrent requests, one query per batch (on the pool; see GroupCommit). */
  private readonly lookups: GroupCommit<Buffer, ApiKeyRow | undefined> | undefined;

  constructor(private readonly db: Queryable) {
    this.lookups =
      db instanceof Database
        ? new GroupCommit((hashes) => this.lookUp(hashes), { maxBatch: 200, maxInFlight: 4 })
        : undefined;
  }

  private async lookUp(hashes: Buffer[]): Promise<Array<ApiKeyRow | undefined>> {
    const { rows } = await this.db.query<ApiKeyRow & { key_hash: Buffer }>(
      `SELECT id, name, namespace, scopes, key_hash FROM api_keys
       WHERE key_hash = ANY($1::bytea[]) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
      [hashes],
    );
    const byHash = new Map(rows.map((r) => [r.key_hash.toString("hex"), r]));
    return hashes.map((h) => byHash.get(h.toString("hex")));
  }

  async insert(key: StoredApiKey): Promise<void> {
    await this.db.query(
      `INSERT INTO api_keys (id, name, namespace, scopes, key_hash, prefix, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [key.id, key.name, key.namespace, key.scopes, key.hash, key.prefix, key.expiresAt ?? null],
    );
  }

  async ensureBootstrap(key: StoredApiKey): Promise<"created" | "exists" | "revoked"> {
    try {
      return await this.ensureBootstrapOnce(key);
    } catch (error) {
      // Two processes started at once both found no key and both inserted it: the one that lost
      // (unique_violation) looks again and finds the other's row.
      if ((error as { code?: string }).code !== "23505") throw error;
      return this.ensureBootstrapOnce(key);
    }
  }

  private async ensureBootstrapOnce(key: StoredApiKey): Promise<"created" | "exists" | "revoked"> {
    // One statement: a key with this hash is left as it is (revoked stays revoked); otherwise
    // the new bootstrap key is inserted and any earlier bootstrap key, now replaced, revoked.
    const { rows } = await this.db.query<{ state: "created" | "exists" | "revoked" }>(
      `WITH found AS (SELECT revoked_at FROM api_keys WHERE key_hash = $5),
       inserted AS (
         INSERT INTO api_keys (id, name, namespace, scopes, key_hash, prefix, bootstrap)
         SELECT $1, $2, $3, $4, $5, $6, true WHERE NOT EXISTS (SELECT 1 FROM found)
         RETURNING id),
       retired AS (
         UPDATE api_keys SET revoked_at = now()
         WHERE bootstrap AND revoked_at IS NULL AND key_hash <> $5 AND EXISTS (SELECT 1 FROM inserted)
         RETURNING id)
       SELECT CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN 'created'
                   WHEN (SELECT revoked_at FROM found) IS NOT NULL THEN 'revoked'
                   ELSE 'exists' END AS state,
              (SELECT count(*) FROM retired) AS retired`,
      [key.id, key.name, key.namespace, key.scopes, key.hash, key.prefix],
    );
    return rows[0]!.state;
  }

  async findByHash(hash: Buffer): Promise<Principal | undefined> {
    const row = this.lookups ? await this.lookups.submit(hash) : (await this.lookUp([hash]))[0];
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
      `SELECT count(*)::int AS n FROM api_keys
       WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
    );
    return rows[0]?.n ?? 0;
  }

  async list(options: { limit: number; after?: Keyset }): Promise<ApiKeyPage> {
    const page = await keysetPage<ApiKeyRecord>(
      this.db,
      { columns: RECORD_COLUMNS, from: "api_keys", where: "true", column: "created_at" },
      options,
    );
    return { keys: page.rows, next: page.next };
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    const { rows } = await this.db.query<ApiKeyRecord>(
      `SELECT ${RECORD_COLUMNS} FROM api_keys WHERE id = $1`,
      [id],
    );
    return rows[0];
  }

  async revoke(id: string): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`,
      [id],
    );
    return (rowCount ?? 0) > 0;
  }
}
