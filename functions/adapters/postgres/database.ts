import pg from "pg";

/** The part of a pg client that repositories use: a parameterised query. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/**
 * What repositories and use cases get: queries plus transactions. Database implements it
 * on the pool; TransactionBoundDb implements it inside one open transaction, so code that
 * calls transaction() composes into a larger unit (an idempotent request, a test).
 */
export interface Db extends Queryable {
  rows<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
}

export interface DatabaseOptions {
  connectionString: string;
  ssl?: boolean;
  max?: number;
  idleTimeoutMillis?: number;
  connectionTimeoutMillis?: number;
  applicationName?: string;
}

/**
 * The one way TME talks to Postgres: a pool, typed parameterised queries and transactions.
 * Timestamps come back as Date, bigint counts as numbers (they stay far below 2^53 here).
 */
export class Database implements Db {
  readonly pool: pg.Pool;

  constructor(options: DatabaseOptions) {
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      ssl: options.ssl ? { rejectUnauthorized: true } : undefined,
      max: options.max ?? 10,
      idleTimeoutMillis: options.idleTimeoutMillis ?? 30000,
      connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000,
      application_name: options.applicationName ?? "tme",
    });
    // An idle client losing its server (restart, failover) must not crash the process;
    // the pool drops it and the next query opens a new one.
    this.pool.on("error", () => {});
  }

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.pool.query<R>(text, values);
  }

  /** Rows of a query. */
  async rows<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    return (await this.pool.query<R>(text, values)).rows;
  }

  /**
   * Runs fn inside BEGIN/COMMIT on one client; any throw rolls back and rethrows.
   * Everything that must be atomic with a state change (its event, its outbox row) goes here.
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** True when a trivial query answers within the pool's connection timeout. */
  async ping(): Promise<boolean> {
    try {
      await this.pool.query("SELECT 1");
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

// COUNT(*) and BIGSERIAL arrive as strings by default; TME's counts fit in a JS number.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** A Db whose transaction() joins the already open transaction of `client`. */
export class TransactionBoundDb implements Db {
  constructor(private readonly client: Queryable) {}

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.client.query<R>(text, values);
  }

  async rows<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    return (await this.client.query<R>(text, values)).rows;
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return fn(this.client);
  }
}

/** Opens one connection and runs SELECT 1; throws what the connection attempt threw. */
export async function probeConnection(connectionString: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: timeoutMs });
  try {
    await client.connect();
    await client.query("SELECT 1");
  } finally {
    await client.end().catch(() => {});
  }
}
