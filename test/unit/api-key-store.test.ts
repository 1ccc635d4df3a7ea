import { describe, expect, it } from "vitest";
import { PostgresApiKeyStore } from "../../functions/adapters/postgres/api-keys-repository.js";
import type { Queryable } from "../../functions/adapters/postgres/database.js";

describe("PostgresApiKeyStore.findByHash", () => {
  it("stamps last_used_at at most once a minute per key from one process, not on every request", async () => {
    const statements: string[] = [];
    const db = {
      async query(text: string) {
        statements.push(text.trim().split(/\s+/)[0]!);
        return {
          rows: [
            {
              id: "key_1",
              name: "ci",
              namespace: "default",
              scopes: ["tasks:read"],
              key_hash: Buffer.from("x"),
            },
          ],
        };
      },
    } as unknown as Queryable;
    const store = new PostgresApiKeyStore(db);
    for (let i = 0; i < 5; i++) {
      expect(await store.findByHash(Buffer.from("x"))).toMatchObject({ keyId: "key_1" });
    }
    expect(statements).toEqual(["SELECT", "UPDATE", "SELECT", "SELECT", "SELECT", "SELECT"]);
  });
});
