import { describe, expect, it } from "vitest";
import { withTestApp } from "../helpers/test-app.js";

const t = withTestApp({ app: { allow_private_callbacks: true } });

describe("namespace names (finding 11)", () => {
  it.each(["../..", "NSB", "team\u202eb", "a/b", "-lead", "x".repeat(64), ""])(
    "an admin's ?namespace=%j is a 400 naming query.namespace",
    async (namespace) => {
      const res = await t.request("GET", `/tasks?namespace=${encodeURIComponent(namespace)}`);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({
        code: "validation_error",
        details: [{ path: "query.namespace" }],
      });
      expect(res.body.error.details[0].message).toContain("lowercase letters, digits, _ or -");
    },
  );

  it("a valid name still works, and a non-admin asking for another namespace is 403", async () => {
    expect((await t.request("GET", "/tasks?namespace=team-b_2")).status).toBe(200);
    const reader = await t.keyWith(["tasks:read"], "team-a");
    expect((await t.request("GET", "/tasks?namespace=team-b", { key: reader })).status).toBe(403);
    // Its own namespace named explicitly is fine; a malformed one is 400 before anything else.
    expect((await t.request("GET", "/tasks?namespace=team-a", { key: reader })).status).toBe(200);
    expect((await t.request("GET", "/tasks?namespace=..", { key: reader })).status).toBe(400);
  });
});

describe("response headers (finding 12)", () => {
  it("/docs sends a CSP without inline script, nosniff, frame denial and no referrer; it keeps no key", async () => {
    const docs = await t.request("GET", "/docs", { key: null });
    expect(docs.status).toBe(200);
    const csp = docs.headers.get("content-security-policy")!;
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*'unsafe-inline'/);
    expect(docs.headers.get("x-content-type-options")).toBe("nosniff");
    expect(docs.headers.get("x-frame-options")).toBe("DENY");
    expect(docs.headers.get("referrer-policy")).toBe("no-referrer");
    // Every script is a file (the CSP would block an inline one).
    expect(docs.text).not.toMatch(/<script>(?!<\/script>)/);
    const init = await t.request("GET", "/docs/assets/init.js", { key: null });
    expect(init.status).toBe(200);
    expect(init.text).toContain("persistAuthorization: false");
    expect(init.text).toContain('localStorage.removeItem("authorized")');
    expect(init.text).not.toMatch(/localStorage\.setItem/);
  });

  it("authenticated JSON is never cached; every response carries nosniff and a frame-denying CSP", async () => {
    for (const [path, key] of [
      ["/tasks", undefined],
      ["/task/tsk_missing", undefined],
      ["/tasks", "wrong-key"],
    ] as const) {
      const res = await t.request("GET", path, { key });
      expect(res.headers.get("cache-control"), path).toBe("no-store");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    }
    const openapi = await t.request("GET", "/openapi.json", { key: null });
    expect(openapi.headers.get("x-content-type-options")).toBe("nosniff");
    expect(openapi.headers.get("cache-control")).toBeNull();
  });
});

describe("invalid UTF-8 (finding 13)", () => {
  const send = (bytes: Buffer) =>
    fetch(`${t.url}/task/create`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.adminKey}`, "content-type": "application/json" },
      body: bytes,
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

  it.each([
    [
      "a lone continuation byte",
      Buffer.from([...Buffer.from('{"name": "a'), 0x80, ...Buffer.from('"}')]),
      11,
    ],
    [
      "0xff",
      Buffer.from([...Buffer.from('{"name": "noop", "description": "x'), 0xff, ...Buffer.from('"}')]),
      34,
    ],
    ["an overlong slash", Buffer.from([...Buffer.from('{"name": "'), 0xc0, 0xaf, ...Buffer.from('"}')]), 10],
    [
      "an encoded surrogate",
      Buffer.from([...Buffer.from('{"name": "'), 0xed, 0xa0, 0x80, ...Buffer.from('"}')]),
      10,
    ],
    [
      "a truncated sequence",
      Buffer.from([...Buffer.from('{"name": "'), 0xe2, 0x82, ...Buffer.from('"}')]),
      10,
    ],
  ])("%s is a 400 naming the byte offset, not a silent U+FFFD", async (_what, bytes, offset) => {
    const res = await send(bytes);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_error");
    expect(res.body.error.message).toContain(`byte offset ${offset}`);
    expect(res.body.error.details).toEqual([
      { path: "(body)", message: expect.stringContaining(`offset ${offset}`) },
    ]);
  });

  it("well-formed multi-byte text comes back byte for byte", async () => {
    const description = "naïve ☃ 𝄞 日本";
    const res = await send(Buffer.from(JSON.stringify({ name: "noop", description }), "utf8"));
    expect(res.status).toBe(201);
    expect(res.body.description).toBe(description);
  });

  it("a query parameter percent-encoding invalid UTF-8 is a 400 naming it", async () => {
    const res = await t.request("GET", "/tasks?name=%FF%FE");
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([
      { path: "query.name", message: expect.stringContaining("UTF-8") },
    ]);
  });
});

describe("idempotency records hold no secret (finding 4)", () => {
  it("a replayed subscription create says the signing secret was shown once; none is stored", async () => {
    const body = {
      event_types: ["task.failed"],
      callback_url: "http://127.0.0.1:9/hook",
      auth: { type: "hmac" },
    };
    const headers = { "idempotency-key": "sub-create-1" };
    const first = await t.request("POST", "/events", { body, headers });
    expect(first.status).toBe(201);
    const secret: string = first.body.signing_secret;
    expect(secret).toMatch(/^whsec_/);
    const replay = await t.request("POST", "/events", { body, headers });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({
      id: first.body.id,
      signing_secret: null,
      signing_secret_note: expect.stringContaining("shown once"),
    });
    expect(replay.text).not.toContain(secret);
    const stored = await t.app.db.rows("SELECT * FROM idempotency_keys");
    expect(JSON.stringify(stored)).not.toContain(secret);
    expect(JSON.stringify(stored)).not.toContain(secret.slice("whsec_".length));
  });

  it("expired records are pruned", async () => {
    const { pruneExpiredIdempotencyKeys } = await import(
      "../../functions/adapters/postgres/idempotency-repository.js"
    );
    await t.app.db.query(
      `INSERT INTO idempotency_keys (namespace, key, route, request_hash, response_status, response_body, created_at)
       VALUES ('default', 'old-1', 'POST /task/create', 'h', 201, '{}', now() - interval '25 hours'),
              ('default', 'new-1', 'POST /task/create', 'h', 201, '{}', now())`,
    );
    expect(await pruneExpiredIdempotencyKeys(t.app.db)).toBe(1);
    const keys = (await t.app.db.rows<{ key: string }>("SELECT key FROM idempotency_keys")).map((r) => r.key);
    expect(keys).toContain("new-1");
    expect(keys).not.toContain("old-1");
  });
});
