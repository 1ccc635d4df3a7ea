import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

/** Where the numbered SQL files live: beside the code in a Lambda bundle, else the repo's migrations/. */
export function defaultMigrationsDir(): string {
  if (process.env.TME_MIGRATIONS_DIR) return process.env.TME_MIGRATIONS_DIR;
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../migrations");
}

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export function readMigrations(dir = defaultMigrationsDir()): Migration[] {
  const migrations = readdirSync(dir)
    .filter((file) => file.endsWith(".sql"))
    .map((file) => {
      const match = FILE_PATTERN.exec(file);
      if (!match) throw new Error(`migration file ${file} must be named NNNN_name.sql`);
      return { id: Number(match[1]), name: match[2]!, sql: readFileSync(path.join(dir, file), "utf8") };
    })
    .sort((a, b) => a.id - b.id);
  migrations.forEach((m, i) => {
    if (i > 0 && migrations[i - 1]!.id === m.id) throw new Error(`two migrations numbered ${m.id}`);
  });
  return migrations;
}

// Any constant: all TME migrators on one database serialise on it.
const MIGRATION_LOCK_KEY = 7_364_001;

export interface MigrationResult {
  applied: string[];
  alreadyApplied: number;
}

/**
 * Applies pending migrations, each in its own transaction, recorded in tme_migrations.
 * A session advisory lock makes two processes (two `npm start`s, two Lambdas) take turns:
 * the second finds everything applied and does nothing.
 */
export async function migrate(
  connectionString: string,
  dir = defaultMigrationsDir(),
): Promise<MigrationResult> {
  const migrations = readMigrations(dir);
  const client = new pg.Client({ connectionString, application_name: "tme-migrate" });
  // A server lost mid-migration fails the query in flight; the event must not end the process.
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS tme_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set(
      (await client.query<{ id: number }>("SELECT id FROM tme_migrations")).rows.map((r) => r.id),
    );
    const applied: string[] = [];
    for (const migration of migrations) {
      if (done.has(migration.id)) continue;
      try {
        await client.query("BEGIN");
        await client.query(migration.sql);
        await client.query("INSERT INTO tme_migrations (id, name) VALUES ($1, $2)", [
          migration.id,
          migration.name,
        ]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw new Error(`migration ${migration.id}_${migration.name} failed: ${(error as Error).message}`, {
          cause: error,
        });
      }
      applied.push(`${String(migration.id).padStart(4, "0")}_${migration.name}`);
    }
    return { applied, alreadyApplied: done.size };
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).catch(() => {});
    await client.end();
  }
}
