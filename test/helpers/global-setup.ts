import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { probeConnection } from "../../functions/adapters/postgres/database.js";
import { migrate } from "../../functions/adapters/postgres/migrator.js";
import { ensureDashboardBuilt } from "../../functions/dashboard/build.js";
import { EmbeddedPostgres } from "../../functions/local/embedded-postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** A superuser URL to the test server's "postgres" database. */
    adminDatabaseUrl: string;
    /** A migrated database to copy per test file (CREATE DATABASE ... TEMPLATE). */
    templateDatabase: string;
  }
}

const LOCAL_SERVER = "postgres://postgres@127.0.0.1:5432/postgres";

function reachable(url: string): Promise<boolean> {
  return probeConnection(url, 2000).then(
    () => true,
    () => false,
  );
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Chooses the test server: TEST_DATABASE_URL, else this machine's PostgreSQL on 5432,
 * else an embedded one (so `npm test` passes on a laptop without a server), and builds
 * one migrated template database that each test file copies; builds the dashboard if its
 * sources changed.
 */
export default async function setup(project: TestProject) {
  // Once, before the files run in parallel: the routes, the browser and the stack tests read it.
  await ensureDashboardBuilt();
  let adminUrl: string;
  let embedded: EmbeddedPostgres | undefined;
  let embeddedDir: string | undefined;
  if (process.env.TEST_DATABASE_URL) {
    adminUrl = process.env.TEST_DATABASE_URL;
    console.log(`[tests] PostgreSQL from TEST_DATABASE_URL: ${adminUrl.replace(/:[^:@/]*@/, ":***@")}`);
  } else if (await reachable(LOCAL_SERVER)) {
    adminUrl = LOCAL_SERVER;
    console.log(`[tests] PostgreSQL server at ${LOCAL_SERVER}`);
  } else {
    embeddedDir = mkdtempSync(path.join(os.tmpdir(), "tme-test-pg-"));
    embedded = new EmbeddedPostgres({ dataDir: embeddedDir, database: "postgres" });
    await embedded.start();
    adminUrl = embedded.connectionString;
    console.log(`[tests] no server reachable: using ${embedded.description}`);
  }

  const template = `tme_test_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${template}`);
  await admin.query(`CREATE DATABASE ${template}`);
  await migrate(withDatabase(adminUrl, template));
  await admin.end();

  project.provide("adminDatabaseUrl", adminUrl);
  project.provide("templateDatabase", template);

  return async () => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    // Databases left by crashed runs of this file set are dropped too; they share the prefix.
    const { rows } = await client.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2`,
      [template, `tme_t_${process.pid}_%`],
    );
    for (const { datname } of rows) {
      await client
        .query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(datname)} WITH (FORCE)`)
        .catch(() => {});
    }
    await client.end();
    await embedded?.stop();
    if (embeddedDir) rmSync(embeddedDir, { recursive: true, force: true });
  };
}
