import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Database } from "../../functions/adapters/postgres/database.js";
import { EmbeddedPostgres } from "../../functions/local/embedded-postgres.js";

// The shared test server trusts 127.0.0.1, so it never refuses a password: a private server
// with scram-sha-256 (the embedded one) is what shows a rotation.
let dir: string;
let server: EmbeddedPostgres;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tme-rotation-"));
  server = new EmbeddedPostgres({ dataDir: dir, database: "postgres" });
  await server.start();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("Database with rotating credentials", () => {
  it("re-reads the password after 28P01 and retries the refused call once", async () => {
    const url = new URL(server.connectionString);
    let secret = server.password;
    let fetched = secret;
    let forgotten = 0;
    const db = new Database({
      connection: {
        host: url.hostname,
        port: Number(url.port),
        database: "postgres",
        user: "postgres",
        password: async () => fetched,
        ssl: false,
      },
      max: 1,
      idleTimeoutMillis: 1,
      onAuthenticationFailure: () => {
        forgotten++;
        fetched = secret;
      },
    });
    try {
      expect((await db.rows<{ one: number }>("SELECT 1 AS one"))[0]!.one).toBe(1);
      // The rotation: the server's password changes, the secret with it, the pool still has the old.
      secret = "rotated-password-0123456789";
      const admin = new pg.Client({ connectionString: server.connectionString });
      await admin.connect();
      await admin.query(`ALTER USER postgres PASSWORD '${secret}'`);
      await admin.end();
      server.password = secret;
      // A new connection is what meets the new password: wait for the idle one to be closed.
      while (db.pool.totalCount > 0) await new Promise((resolve) => setTimeout(resolve, 5));
      expect((await db.rows<{ one: number }>("SELECT 1 AS one"))[0]!.one).toBe(1);
      expect(forgotten).toBe(1);
      await db.transaction(async (tx) => tx.query("SELECT 1"));
      expect(forgotten).toBe(1);
    } finally {
      await db.close();
    }
  });
});
