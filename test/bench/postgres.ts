import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { probeConnection } from "../../functions/adapters/postgres/database.js";
import { migrate } from "../../functions/adapters/postgres/migrator.js";
import { EmbeddedPostgres } from "../../functions/local/embedded-postgres.js";

export const LOCAL_SERVER = "postgres://postgres@127.0.0.1:5432/postgres";

/** The one PostgreSQL server every system of a run is measured on. */
export interface BenchServer {
  /** Superuser URL of the server's "postgres" database. */
  adminUrl: string;
  description: string;
  stop(): Promise<void>;
}

/** The server given, else this machine's PostgreSQL on 5432 when it answers, else TME's embedded one. */
export async function openServer(adminUrl?: string): Promise<BenchServer> {
  if (adminUrl) return { adminUrl, description: redact(adminUrl), stop: async () => {} };
  const local = await probeConnection(LOCAL_SERVER, 2000).then(
    () => true,
    () => false,
  );
  if (local) return { adminUrl: LOCAL_SERVER, description: LOCAL_SERVER, stop: async () => {} };
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "tme-bench-pg-"));
  const embedded = new EmbeddedPostgres({ dataDir, database: "postgres" });
  await embedded.start();
  return {
    adminUrl: embedded.connectionString,
    description: embedded.description,
    stop: async () => {
      await embedded.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function redact(url: string): string {
  return url.replace(/:[^:@/]*@/, ":***@");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

export function databaseUrl(adminUrl: string, database: string): string {
  const parsed = new URL(adminUrl);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/**
 * One connection kept open for the progress polls of a measurement. A poll every 10 ms on a new
 * connection each time would fork a server process a hundred times a second, CPU taken from the
 * system being measured, and more from the slower one (it is polled for longer).
 */
export async function openPollConnection(url: string): Promise<{
  count(sql: string): Promise<number>;
  close(): Promise<void>;
}> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  return {
    count: async (sql) => Number((await client.query<{ n: string }>(sql)).rows[0]?.n ?? 0),
    close: () => client.end().catch(() => {}),
  };
}

/**
 * The databases of one bench run: each system gets a fresh one per measurement, so no
 * system sees another's rows (or their dead tuples). All are dropped at the end.
 */
export class BenchDatabases {
  private readonly created: string[] = [];
  private sequence = 0;
  private readonly prefix: string;

  constructor(private readonly server: BenchServer) {
    this.prefix = `tme_bench_${process.pid}_${Date.now().toString(36)}`;
  }

  /** Drops the databases of earlier runs that were interrupted (their process is gone). */
  async dropAbandoned(): Promise<void> {
    const rows = await adminQuery<{ datname: string }>(
      this.server.adminUrl,
      "SELECT datname FROM pg_database WHERE datname LIKE 'tme\\_bench\\_%'",
    );
    for (const { datname } of rows) {
      const pid = Number(/^tme_bench_(\d+)_/.exec(datname)?.[1]);
      if (!pid || pid === process.pid || alive(pid)) continue;
      await adminQuery(
        this.server.adminUrl,
        `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`,
      ).catch(() => {});
    }
  }

  /** A new empty database, or a copy of template; returns its URL. */
  async create(label: string, template?: string): Promise<{ name: string; url: string }> {
    const name = `${this.prefix}_${++this.sequence}_${label}`.toLowerCase().replace(/[^a-z0-9_]/g, "_");
    const source = template ? ` TEMPLATE ${pg.escapeIdentifier(template)}` : "";
    for (let attempt = 1; ; attempt++) {
      try {
        await adminQuery(this.server.adminUrl, `CREATE DATABASE ${pg.escapeIdentifier(name)}${source}`);
        break;
      } catch (error) {
        // A template still held by a connection closing: "source database is being accessed".
        if ((error as { code?: string }).code !== "55006" || attempt >= 30) throw error;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
    this.created.push(name);
    return { name, url: databaseUrl(this.server.adminUrl, name) };
  }

  /** A database holding TME's schema, migrated once, for the TME runs to copy. */
  async tmeTemplate(): Promise<{ name: string; url: string }> {
    const template = await this.create("tme_template");
    await migrate(template.url);
    return template;
  }

  async dropAll(): Promise<void> {
    for (const name of this.created.reverse()) {
      await adminQuery(
        this.server.adminUrl,
        `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`,
      ).catch(() => {});
    }
    this.created.length = 0;
  }
}

/**
 * Bytes on disk of TME's per-task tables (with their indexes and TOAST), partitions summed,
 * so a partitioned outbox counts what its partitions hold.
 */
export async function taskStorageBytes(url: string): Promise<Record<string, number>> {
  const tables = ["tasks", "task_events", "task_runs", "outbox"];
  const rows = await adminQuery<{ table: string; bytes: string }>(
    url,
    `SELECT t.name AS table,
            COALESCE(CASE WHEN c.relkind = 'p'
              THEN (SELECT sum(pg_total_relation_size(p.relid)) FROM pg_partition_tree(c.oid) p WHERE p.isleaf)
              ELSE pg_total_relation_size(c.oid) END, 0)::bigint AS bytes
       FROM unnest($1::text[]) AS t(name) LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)`,
    [tables],
  );
  return Object.fromEntries(rows.map((r) => [r.table, Number(r.bytes)]));
}
