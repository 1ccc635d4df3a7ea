import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";
import { PostgresApiKeyStore } from "../../functions/adapters/postgres/api-keys-repository.js";
import { Database } from "../../functions/adapters/postgres/database.js";
import { ensureBootstrapKey, hashApiKey } from "../../functions/core/auth/api-keys.js";
import { withTestApp } from "../helpers/test-app.js";
import { waitFor } from "../helpers/wait.js";

// Finding 9: no API or CLI listed or revoked keys, and a restart with TME_BOOTSTRAP_API_KEY set
// brought a revoked bootstrap key back.
const t = withTestApp();

const createKey = (body: Record<string, unknown>, key?: string) => t.request("POST", "/keys", { body, key });

describe("key lifecycle over the API", () => {
  it("POST /keys shows the key once; GET /keys and GET /keys/{id} never show it", async () => {
    const created = await createKey({ name: "ci", scopes: ["tasks:read"], namespace: "team-a" });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      id: expect.stringMatching(/^key_/),
      name: "ci",
      namespace: "team-a",
      scopes: ["tasks:read"],
      status: "active",
      revoked_at: null,
      expires_at: null,
      last_used_at: null,
      bootstrap: false,
      key: expect.stringMatching(/^tme_/),
    });
    expect(created.headers.get("cache-control")).toBe("no-store");
    const key: string = created.body.key;
    expect(created.body.prefix).toBe(key.slice(0, 10));

    const listed = await t.request("GET", "/keys?limit=500");
    expect(listed.status).toBe(200);
    expect(listed.text).not.toContain(key);
    expect(listed.body.find((k: { id: string }) => k.id === created.body.id)).toMatchObject({
      name: "ci",
      status: "active",
    });
    for (const row of listed.body) expect(row).not.toHaveProperty("key");
    const one = await t.request("GET", `/keys/${created.body.id}`);
    expect(one.status).toBe(200);
    expect(one.text).not.toContain(key);

    // The stored row holds the hash, not the key.
    const stored = await t.app.db.rows("SELECT * FROM api_keys WHERE id = $1", [created.body.id]);
    expect(JSON.stringify(stored)).not.toContain(key);
  });

  it("an Idempotency-Key replay of POST /keys says the key was shown once and does not repeat it", async () => {
    const headers = { "idempotency-key": "make-key-1" };
    const first = await t.request("POST", "/keys", {
      body: { name: "once", scopes: ["tasks:read"] },
      headers,
    });
    const replay = await t.request("POST", "/keys", {
      body: { name: "once", scopes: ["tasks:read"] },
      headers,
    });
    expect(first.status).toBe(201);
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toMatchObject({
      id: first.body.id,
      key: null,
      key_note: expect.stringContaining("shown once"),
    });
    expect(JSON.stringify(await t.app.db.rows("SELECT * FROM idempotency_keys"))).not.toContain(
      first.body.key,
    );
  });

  it("revocation holds from the next request, here and in another process's store", async () => {
    const created = await createKey({ name: "short-lived", scopes: ["tasks:read"] });
    const key: string = created.body.key;
    // Another process: its own pool and its own store, nothing shared in memory.
    const otherDb = new Database({ connectionString: t.database.url, max: 1 });
    const other = new PostgresApiKeyStore(otherDb);
    try {
      expect((await t.request("GET", "/tasks", { key })).status).toBe(200);
      expect(await other.findByHash(hashApiKey(key))).toMatchObject({ keyId: created.body.id });

      const revoked = await t.request("DELETE", `/keys/${created.body.id}`);
      expect(revoked.status).toBe(204);
      const refused = await t.request("GET", "/tasks", { key });
      expect(refused.status).toBe(401);
      expect(refused.body.error.code).toBe("unauthenticated");
      expect(await other.findByHash(hashApiKey(key))).toBeUndefined();

      const listed = await t.request("GET", `/keys/${created.body.id}`);
      expect(listed.body).toMatchObject({ status: "revoked", revoked_at: expect.any(String) });
      // Revoking again changes nothing; an unknown id is 404.
      expect((await t.request("DELETE", `/keys/${created.body.id}`)).status).toBe(204);
      expect((await t.request("GET", `/keys/${created.body.id}`)).body.revoked_at).toBe(
        listed.body.revoked_at,
      );
      expect((await t.request("DELETE", "/keys/key_nope")).status).toBe(404);
    } finally {
      await otherDb.close();
    }
  });

  it("an expired key is refused; expires_at must lie ahead; last_used_at is stamped", async () => {
    const past = await createKey({ name: "x", scopes: ["tasks:read"], expires_at: "2020-01-01T00:00:00Z" });
    expect(past.status).toBe(400);
    expect(past.body.error.details).toEqual([{ path: "expires_at", message: "must be in the future" }]);

    const soon = new Date(Date.now() + 3_600_000).toISOString();
    const created = await createKey({ name: "expiring", scopes: ["tasks:read"], expires_at: soon });
    expect(created.status).toBe(201);
    expect(created.body.expires_at).toBe(soon);
    expect((await t.request("GET", "/tasks", { key: created.body.key })).status).toBe(200);
    const stamped = await waitFor(
      "last_used_at",
      async () => (await t.request("GET", `/keys/${created.body.id}`)).body.last_used_at ?? undefined,
      10_000,
    );
    expect(Date.parse(stamped)).toBeGreaterThan(Date.now() - 60_000);

    await t.app.db.query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", [
      created.body.id,
    ]);
    expect((await t.request("GET", "/tasks", { key: created.body.key })).status).toBe(401);
    expect((await t.request("GET", `/keys/${created.body.id}`)).body.status).toBe("expired");
  });

  it("needs admin; refuses unknown scopes and bad namespaces naming the field", async () => {
    const writer = await t.keyWith(["tasks:write"]);
    expect((await t.request("GET", "/keys", { key: writer })).status).toBe(403);
    expect((await createKey({ name: "x", scopes: ["admin"] }, writer)).status).toBe(403);
    expect((await t.request("DELETE", "/keys/key_bootstrap", { key: writer })).status).toBe(403);
    const badScope = await createKey({ name: "x", scopes: ["root"] });
    expect(badScope.status).toBe(400);
    expect(badScope.body.error.details[0].path).toBe("scopes.0");
    for (const namespace of ["../..", "NSB", "a\u202eb", ""]) {
      const bad = await createKey({ name: "x", scopes: ["tasks:read"], namespace });
      expect(bad.status, namespace).toBe(400);
      expect(bad.body.error.details[0].path).toBe("namespace");
    }
  });

  it("pages GET /keys with the keyset cursor", async () => {
    for (let i = 0; i < 3; i++) await createKey({ name: `page-${i}`, scopes: ["tasks:read"] });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await t.request("GET", `/keys?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.map((k: { id: string }) => k.id));
      cursor = res.headers.get("x-next-cursor");
    } while (cursor);
    const all = await t.app.db.rows<{ id: string }>(
      "SELECT id FROM api_keys ORDER BY created_at DESC, id DESC",
    );
    expect(seen).toEqual(all.map((r) => r.id));
  });
});

describe("the bootstrap key", () => {
  it("is never resurrected once revoked; a new value replaces (and revokes) the old one", async () => {
    const value = "bootstrap-value-for-the-keys-test-0123456789";
    expect(await ensureBootstrapKey(t.app.apiKeys, value)).toBe("created");
    expect(await ensureBootstrapKey(t.app.apiKeys, value)).toBe("exists");
    expect((await t.request("GET", "/tasks", { key: value })).status).toBe(200);
    const row = (
      await t.app.db.rows<{ id: string; prefix: string }>("SELECT id, prefix FROM api_keys WHERE bootstrap")
    )[0]!;
    // Only four characters of a chosen key are kept to recognise it.
    expect(row.prefix).toBe(value.slice(0, 4));

    expect((await t.request("DELETE", `/keys/${row.id}`)).status).toBe(204);
    // A restart with TME_BOOTSTRAP_API_KEY still set:
    expect(await ensureBootstrapKey(t.app.apiKeys, value)).toBe("revoked");
    expect((await t.request("GET", "/tasks", { key: value })).status).toBe(401);

    const next = "another-bootstrap-value-0123456789abcdef";
    expect(await ensureBootstrapKey(t.app.apiKeys, next)).toBe("created");
    expect((await t.request("GET", "/tasks", { key: next })).status).toBe(200);
    expect((await t.request("GET", "/tasks", { key: value })).status).toBe(401);
    const third = "third-bootstrap-value-0123456789abcdefgh";
    expect(await ensureBootstrapKey(t.app.apiKeys, third)).toBe("created");
    // The second one was replaced, so it is revoked now.
    expect((await t.request("GET", "/tasks", { key: next })).status).toBe(401);
  });
});

describe("tme keys list | revoke", () => {
  const tme = (args: string[]) =>
    // Asynchronous: the API under test runs in this process and must keep serving meanwhile.
    new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ["--import", "tsx", "functions/cli/tme.ts", ...args],
        { env: { ...process.env, DATABASE_URL: t.database.url, LOG_LEVEL: "ERROR" }, timeout: 60_000 },
        (error, stdout, stderr) => resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });

  it("lists without the key, and a revoked key is refused by the running API at once", async () => {
    const created = await createKey({ name: "cli-listed", scopes: ["tasks:read"] });
    const listed = await tme(["keys", "list"]);
    expect(listed.stderr).toBe("");
    expect(listed.status).toBe(0);
    const line = listed.stdout.split("\n").find((l) => l.startsWith(created.body.id))!;
    expect(line).toContain("active");
    expect(line).toContain("cli-listed");
    expect(listed.stdout).not.toContain(created.body.key);

    const revoked = await tme(["keys", "revoke", created.body.id]);
    expect(revoked.stdout).toContain(`revoked key ${created.body.id}`);
    expect(revoked.status).toBe(0);
    expect((await t.request("GET", "/tasks", { key: created.body.key })).status).toBe(401);
    const relisted = await tme(["keys", "list"]);
    expect(relisted.stdout.split("\n").find((l) => l.startsWith(created.body.id))).toContain("revoked");
    const unknown = await tme(["keys", "revoke", "key_unknown"]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain("no API key key_unknown");
  }, 180_000);
});
