import pg from "pg";
import { probeConnection } from "../adapters/postgres/database.js";
import { redactUrl } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { InternalError } from "../core/errors.js";
import { assertDataDirWritable } from "./data-dir.js";
import { EmbeddedPostgres } from "./embedded-postgres.js";

/** The database the local runtime uses: a server it was pointed at, or its own embedded one. */
export interface DatabaseTarget {
  connectionString: string;
  /** For logs: never contains the password. */
  description: string;
  /**
   * True for the embedded server this process started: nobody else owns its data directory,
   * so whatever it finds running at start belonged to a previous instance that is gone.
   */
  exclusive: boolean;
  /** The embedded server's supervisor state ("recovering" while it restarts); undefined for a server. */
  state?: () => string;
  stop(): Promise<void>;
}

export class DatabaseUnreachable extends InternalError {
  override name = "DatabaseUnreachable";
}

function serverUrl(config: Config): string {
  if (config.databaseUrl) return config.databaseUrl;
  const { host, port, database, user, password, ssl } = config.db;
  const auth = password
    ? `${encodeURIComponent(user)}:${encodeURIComponent(password)}`
    : encodeURIComponent(user);
  return `postgres://${auth}@${host}:${port}/${encodeURIComponent(database)}${ssl ? "?sslmode=verify-full" : ""}`;
}

/**
 * Connects once to prove the server answers. A missing database on a reachable server is
 * created (a fresh server needs no manual step); anything else becomes one clear line.
 */
async function checkServer(url: string): Promise<void> {
  try {
    await probeConnection(url, 5000);
  } catch (error) {
    const err = error as { code?: string; message: string };
    if (err.code === "3D000") {
      const parsed = new URL(url);
      const name = decodeURIComponent(parsed.pathname.slice(1));
      parsed.pathname = "/postgres";
      const admin = new pg.Client({ connectionString: parsed.toString(), connectionTimeoutMillis: 5000 });
      try {
        await admin.connect();
        await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
      } catch (createError) {
        if ((createError as { code?: string }).code !== "42P04") {
          throw new DatabaseUnreachable(
            `database ${name} does not exist on ${redactUrl(url)} and could not be created: ${(createError as Error).message}`,
          );
        }
      } finally {
        await admin.end().catch(() => {});
      }
      return;
    }
    throw new DatabaseUnreachable(
      `cannot connect to PostgreSQL at ${redactUrl(url)}: ${err.message || err.code} ` +
        "(check DATABASE_URL or configurations/db_config.yaml, or use the embedded default: embedded: true and no DATABASE_URL)",
    );
  }
}

export async function openDatabaseTarget(
  config: Config,
  log: (message: string) => void,
  options: { shareRunning?: boolean; onFatal?: (message: string) => void } = {},
): Promise<DatabaseTarget> {
  if (config.databaseUrl || !config.db.embedded) {
    const url = serverUrl(config);
    await checkServer(url);
    return {
      connectionString: url,
      description: `PostgreSQL server at ${redactUrl(url)}`,
      exclusive: false,
      stop: async () => {},
    };
  }
  assertDataDirWritable(config.dataDir);
  const embeddedOptions = {
    dataDir: config.dataDir,
    database: config.db.database,
    log,
    onFatal: options.onFatal,
  };
  const running = options.shareRunning ? EmbeddedPostgres.running(embeddedOptions) : undefined;
  // Another TME owns that server: use it, and leave it running afterwards.
  if (running) return { ...running, exclusive: false, stop: async () => {} };
  const embedded = new EmbeddedPostgres(embeddedOptions);
  await embedded.start();
  return {
    connectionString: embedded.connectionString,
    description: embedded.description,
    exclusive: true,
    state: () => embedded.state,
    stop: () => embedded.stop(),
  };
}
