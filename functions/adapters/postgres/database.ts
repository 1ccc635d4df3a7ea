import { createHash } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import pg from "pg";
import { DatabaseStorageFull, DatabaseUnavailable } from "../../core/errors.js";

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
  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
}

export interface TransactionOptions {
  /**
   * Planner or server settings for this transaction only (SET LOCAL), sent with its BEGIN in one
   * round trip. Names and values are TME's own constants, checked against a strict pattern.
   */
  settings?: Readonly<Record<string, string>>;
}

/** SET LOCAL ... TO DEFAULT for the names of settings: the session's values again. */
function resetLocal(settings: Readonly<Record<string, string>>): string {
  return Object.keys(settings)
    .map((name) => {
      if (!SETTING_WORD.test(name)) throw new Error(`not a setting TME sets: ${name}`);
      return `SET LOCAL ${name} TO DEFAULT`;
    })
    .join("; ");
}

const SETTING_WORD = /^[a-z_][a-z0-9_.]*$/;

/** SET LOCAL statements for settings (see TransactionOptions), joined by "; ". */
function setLocal(settings: Readonly<Record<string, string>>): string {
  return Object.entries(settings)
    .map(([name, value]) => {
      if (!SETTING_WORD.test(name) || !SETTING_WORD.test(value))
        throw new Error(`not a setting TME sets: ${name} = ${value}`);
      return `SET LOCAL ${name} = ${value}`;
    })
    .join("; ");
}

/**
 * Where and who, with the password asked for at each new connection: the cloud's credentials
 * live in a secret that is rotated, so a fixed URL would go stale.
 */
export interface DatabaseConnection {
  host: string;
  port: number;
  database: string;
  user: string;
  password: () => Promise<string>;
  /** false only for a server on this machine (tests). */
  ssl: ConnectionOptions | false;
}

export interface DatabaseOptions {
  /** A postgres:// URL, or `connection` for credentials that change. */
  connectionString?: string;
  connection?: DatabaseConnection;
  /**
   * The server refused the password (28P01, a rotated secret): told, then the refused call is
   * made once more. Nothing ran on the server before authentication, so the retry is safe.
   */
  onAuthenticationFailure?: () => void;
  ssl?: boolean;
  max?: number;
  idleTimeoutMillis?: number;
  connectionTimeoutMillis?: number;
  applicationName?: string;
  /**
   * A query without an answer for this long fails and its connection is dropped: a server cut
   * off by the network (no RST, no FIN) would otherwise hold a pool slot forever. Default 60 s.
   */
  queryTimeoutMillis?: number;
  /**
   * The server ends a session that sits this long inside a transaction without sending a
   * statement (idle_in_transaction_session_timeout), rolling it back: a TME frozen (SIGSTOP, a
   * stalled machine) between two statements of a transaction would otherwise hold its row
   * locks forever, and every takeover of its tasks (FOR UPDATE SKIP LOCKED) would pass them by.
   * TME itself never waits between a transaction's statements. Default: no limit.
   */
  idleInTransactionTimeoutMillis?: number;
  /**
   * Settings of every session, sent when a connection opens (`-c name=value`): what the
   * statements of every writer read with current_setting() (BUS_EVENTS_SETTING). Names and
   * values are TME's own, never a caller's.
   */
  settings?: Record<string, string>;
  /**
   * Statements with parameters are prepared once per connection and then only bound and run
   * (default true): parsing and planning TME's larger statements cost more than running them
   * (a create of one task: 2.0 ms unprepared, 0.9 ms prepared; of 20: 6.7 against 3.3). Off
   * behind a pooler that hands a session's statements to other server connections: RDS Proxy
   * pins every session that prepares one, which undoes its pooling (the cloud).
   */
  preparedStatements?: boolean;
  /** Told about every connection that breaks (default: nothing; the caller gets the error). */
  onConnectionError?: (error: Error) => void;
  /** Told when the server cannot write for want of disk, at most once a minute while it lasts. */
  onStorageFailure?: (message: string) => void;
}

function sessionOptions(settings: Record<string, string> = {}): string | undefined {
  const pairs = Object.entries(settings).map(([name, value]) => {
    if (!/^[a-z_.]+$/.test(name) || !/^[a-z_]+$/.test(value))
      throw new Error(`Database: setting ${name}=${value} is not a plain name and word`);
    return `-c ${name}=${value}`;
  });
  return pairs.length > 0 ? pairs.join(" ") : undefined;
}

/** SQLSTATE invalid_password: the credentials were rotated under a warm pool. */
const INVALID_PASSWORD = "28P01";

/** SQLSTATEs of a server that went away or refuses connections for now (class 08 and friends). */
const UNAVAILABLE_STATES = new Set([
  // The server ended a session idle in its transaction (idleInTransactionTimeoutMillis): it
  // rolled back; like a terminated backend, the next connection works.
  "25P03",
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
]);
const UNAVAILABLE_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  // The server's certificate does not verify (verify-full): to a caller the database is
  // unreachable, a 503, not a fault of its request.
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
]);
/** pg reports some losses with a message only. */
const UNAVAILABLE_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed and is not queryable)/;

/** True when an error means the database could not be reached, not that the query was wrong. */
export function isConnectionLoss(error: unknown): boolean {
  if (error instanceof DatabaseUnavailable) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  if (code && (UNAVAILABLE_STATES.has(code) || UNAVAILABLE_ERRNOS.has(code))) return true;
  return UNAVAILABLE_MESSAGES.test(error.message);
}

/**
 * The server cannot write its files: disk_full (53100), an I/O error (58030, as a read-only
 * remount gives), or a message that says so where the SQLSTATE is generic.
 */
const STORAGE_STATES = new Set(["53100", "58030"]);
const STORAGE_MESSAGES = /No space left on device|Read-only file system|Disk quota exceeded/;

export function isStorageFailure(error: unknown): boolean {
  if (error instanceof DatabaseStorageFull) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  return (code !== undefined && STORAGE_STATES.has(code)) || STORAGE_MESSAGES.test(error.message);
}

/**
 * Connection losses become DatabaseUnavailable and storage failures DatabaseStorageFull (both
 * 503 with Retry-After); anything else passes.
 */
function typed(error: unknown): unknown {
  if (error instanceof DatabaseUnavailable || error instanceof DatabaseStorageFull) return error;
  if (isStorageFailure(error)) return new DatabaseStorageFull(error);
  return isConnectionLoss(error) ? new DatabaseUnavailable(error) : error;
}

/**
 * A comment that keeps a statement unprepared: parsed and planned at every call, for its values.
 * A prepared statement may settle on one generic plan after a few calls, blind to its values;
 * that suits TME's batch statements (arrays and JSON, the same plan whatever they hold) but not a
 * filter whose best plan depends on what it asks for (a rare label against a common one).
 */
export const PLAN_PER_CALL = "/* tme: planned per call */";

/**
 * Names for prepared statements: one per statement text and transaction settings. A prepared
 * statement keeps the plan it settled on, so one run inside SORT_FREE and outside it (the
 * waiting facts) gets a statement of its own under each. Texts are TME's own and few; past
 * MAX_PREPARED distinct ones, statements go unprepared rather than grow every connection's cache.
 */
class StatementNames {
  private readonly names = new Map<string, string>();
  /** Bumped when a statement is forgotten, so that its next name is new on every connection. */
  private generation = 0;

  constructor(private readonly enabled: boolean) {}

  config(text: string, values: unknown[] | undefined, settings?: Readonly<Record<string, string>>) {
    if (!this.enabled || values === undefined || text.includes(PLAN_PER_CALL)) return { text, values };
    const key = keyOf(text, settings);
    let name = this.names.get(key);
    if (name === undefined) {
      if (this.names.size >= MAX_PREPARED) return { text, values };
      const hash = createHash("sha256").update(`${this.generation}\n${key}`).digest("base64url");
      name = `tme_${hash.slice(0, 24)}`;
      this.names.set(key, name);
    }
    return { name, text, values };
  }

  /**
   * A prepared statement whose result columns changed under it (a migration added a column to a
   * table it reads with *) fails with 0A000 until it is prepared again, and one the connection no
   * longer holds (26000: a pooler between, or pg closing it after a value failed to convert) with
   * 26000: either way it gets a new name, so the next call prepares it anew.
   */
  forgetIfStale(error: unknown, text: string, settings?: Readonly<Record<string, string>>): boolean {
    if (!isStalePlan(error)) return false;
    this.names.delete(keyOf(text, settings));
    this.generation++;
    return true;
  }

  /** A client's queries, prepared (under these transaction settings). */
  preparing(client: pg.ClientBase, settings?: Readonly<Record<string, string>>): Queryable {
    return this.enabled ? new PreparingClient(client, this, settings) : client;
  }
}

/** A transaction's client whose statements with parameters are prepared (StatementNames). */
class PreparingClient implements Queryable {
  constructor(
    private readonly client: pg.ClientBase,
    private readonly statements: StatementNames,
    private readonly settings?: Readonly<Record<string, string>>,
  ) {}

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.client.query<R>(this.statements.config(text, values, this.settings)).catch((error) => {
      // The transaction fails; run again (Database.transaction), it prepares the statement anew.
      this.statements.forgetIfStale(error, text, this.settings);
      throw error;
    });
  }

  /** The same client while these settings hold (a nested transaction's SET LOCAL). */
  under(settings: Readonly<Record<string, string>>): Queryable {
    return new PreparingClient(this.client, this.statements, { ...this.settings, ...settings });
  }
}

const MAX_PREPARED = 1000;

function keyOf(text: string, settings?: Readonly<Record<string, string>>): string {
  return settings ? `${JSON.stringify(settings)}\n${text}` : text;
}

/**
 * feature_not_supported "cached plan must not change result type", or invalid_sql_statement_name
 * (the statement is gone from the connection): see forgetIfStale.
 */
function isStalePlan(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return (
    code === "26000" ||
    (code === "0A000" && /cached plan must not change result type/.test((error as Error).message))
  );
}

/**
 * The one way TME talks to Postgres: a pool, typed parameterised queries and transactions.
 * Timestamps come back as Date, bigint counts as numbers (they stay far below 2^53 here).
 */
export class Database implements Db {
  readonly pool: pg.Pool;
  /**
   * The last write the server refused for want of disk. A read (SELECT 1) still works on a full
   * disk, so /health asks this too; and a committed transaction proves nothing (a read-only one
   * commits on a full disk), so the failure simply ages out once writes stop failing.
   */
  private storageFailure: { at: Date; message: string } | undefined;
  private storageReportedAt = 0;
  private readonly onStorageFailure: (message: string) => void;
  private readonly onAuthenticationFailure: (() => void) | undefined;
  private readonly statements: StatementNames;

  constructor(options: DatabaseOptions) {
    if (!options.connectionString === !options.connection) {
      throw new Error("Database: give exactly one of connectionString and connection");
    }
    this.onAuthenticationFailure = options.onAuthenticationFailure;
    this.statements = new StatementNames(options.preparedStatements ?? true);
    this.pool = new pg.Pool({
      ...(options.connection ?? {
        connectionString: options.connectionString,
        ssl: options.ssl ? { rejectUnauthorized: true } : undefined,
      }),
      max: options.max ?? 10,
      idleTimeoutMillis: options.idleTimeoutMillis ?? 30000,
      connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000,
      application_name: options.applicationName ?? "tme",
      query_timeout: options.queryTimeoutMillis ?? 60_000,
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMillis,
      options: sessionOptions(options.settings),
      // The kernel notices a peer that vanished (host down, cable cut) within about a minute.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    const onConnectionError = options.onConnectionError ?? (() => {});
    this.onStorageFailure = options.onStorageFailure ?? (() => {});
    // A client whose server goes away (restart, crash, pg_terminate_backend, failover) emits
    // 'error'; without a listener that ends the process. The pool listens only while a client
    // is idle, so every client gets its own listener for its whole life, checked out or not;
    // the query in flight fails with the error, and a broken client is not reused.
    this.pool.on("connect", (client) => {
      client.on("error", onConnectionError);
    });
    // The pool also reports an idle client's error; the client's own listener has logged it.
    this.pool.on("error", () => {});
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      const run = () => this.reauthenticating(() => this.pool.query<R>(this.statements.config(text, values)));
      return await run().catch((error) => {
        // A statement on its own did nothing: run it again, prepared anew.
        if (this.statements.forgetIfStale(error, text)) return run();
        throw error;
      });
    } catch (error) {
      throw this.noted(error);
    }
  }

  private async reauthenticating<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (!this.onAuthenticationFailure || (error as { code?: string }).code !== INVALID_PASSWORD)
        throw error;
      this.onAuthenticationFailure();
      return call();
    }
  }

  /** The server's reason, when a write failed for want of disk within the last windowMs. */
  storageProblem(windowMs = 30_000): string | undefined {
    const failure = this.storageFailure;
    return failure && Date.now() - failure.at.getTime() < windowMs ? failure.message : undefined;
  }

  private noted(error: unknown): unknown {
    const result = typed(error);
    if (result instanceof DatabaseStorageFull) {
      const cause = result.cause instanceof Error ? result.cause.message : String(result.cause);
      this.storageFailure = { at: new Date(), message: cause };
      if (Date.now() - this.storageReportedAt >= 60_000) {
        this.storageReportedAt = Date.now();
        this.onStorageFailure(cause);
      }
    }
    return result;
  }

  /** Rows of a query. */
  async rows<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    return (await this.query<R>(text, values)).rows;
  }

  /**
   * Runs fn inside BEGIN/COMMIT on one client; any throw rolls back and rethrows.
   * Everything that must be atomic with a state change (its event, its outbox row) goes here.
   *
   * A transaction the server chose as a deadlock's victim (or failed for serialization) is run
   * again, up to TRANSIENT_ATTEMPTS times: nothing of it was kept, and the other one has gone on.
   * Two writers that lock the same rows in opposite orders (a subscription deleted while its
   * deliveries are being claimed) would otherwise answer a caller 500 for a race of the server's.
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.transactionOnce(fn, options);
      } catch (error) {
        const code = (error as { code?: string }).code ?? "";
        if (attempt >= TRANSIENT_ATTEMPTS || !(TRANSIENT_SQLSTATES.has(code) || isStalePlan(error)))
          throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
      }
    }
  }

  private async transactionOnce<T>(
    fn: (tx: Queryable) => Promise<T>,
    options: TransactionOptions,
  ): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.reauthenticating(() => this.pool.connect());
    } catch (error) {
      throw typed(error);
    }
    let broken: unknown;
    try {
      await client.query(options.settings ? `BEGIN; ${setLocal(options.settings)}` : "BEGIN");
      const result = await fn(this.statements.preparing(client, options.settings));
      await client.query("COMMIT");
      return result;
    } catch (error) {
      if (isConnectionLoss(error)) broken = error;
      else await client.query("ROLLBACK").catch((rollbackError) => (broken = rollbackError));
      throw this.noted(error);
    } finally {
      // A client that lost its connection is destroyed, not handed to the next caller.
      client.release(broken instanceof Error ? broken : undefined);
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

/** deadlock_detected and serialization_failure: the transaction may simply be run again. */
const TRANSIENT_SQLSTATES = new Set(["40P01", "40001"]);
const TRANSIENT_ATTEMPTS = 3;

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

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    // Inside the open transaction: the settings are put back to the session's after fn, so
    // the rest of the outer transaction runs as it would have.
    if (!options.settings) return fn(this.client);
    await this.client.query(setLocal(options.settings));
    try {
      return await fn(
        this.client instanceof PreparingClient ? this.client.under(options.settings) : this.client,
      );
    } finally {
      await this.client.query(resetLocal(options.settings));
    }
  }
}

/** Opens one connection and runs SELECT 1; throws what the connection attempt threw. */
export async function probeConnection(connectionString: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: timeoutMs });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
  } finally {
    await client.end().catch(() => {});
  }
}
