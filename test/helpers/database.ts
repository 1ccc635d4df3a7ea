import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { Database } from "../../functions/adapters/postgres/database.js";

export interface TestDatabase {
  name: string;
  url: string;
  db: Database;
  drop(): Promise<void>;
}

function urlFor(database: string): string {
  const parsed = new URL(inject("adminDatabaseUrl"));
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: inject("adminDatabaseUrl") });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * A database of its own for one test file: a copy of the migrated template (fast), or an
 * empty one for tests of the migrations themselves.
 */
export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  // The global setup runs in the parent process; its pid names the template and the copies.
  const template = inject("templateDatabase");
  const parentPid = template.replace("tme_test_template_", "");
  const name = `tme_t_${parentPid}_${randomBytes(5).toString("hex")}`;
  const source = options.empty ? "" : ` TEMPLATE ${template}`;
  for (let attempt = 1; ; attempt++) {
    try {
      await adminQuery(`CREATE DATABASE ${name}${source}`);
      break;
    } catch (error) {
      // Two files copying the template at the same instant: "source database is being accessed".
      if ((error as { code?: string }).code !== "55006" || attempt >= 20) throw error;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
  const url = urlFor(name);
  const db = new Database({ connectionString: url, max: 10 });
  return {
    name,
    url,
    db,
    drop: async () => {
      await db.close();
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}
