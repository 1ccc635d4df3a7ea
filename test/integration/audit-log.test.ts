import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveAudit, verifyAudit } from "../../functions/adapters/postgres/audit-repository.js";
import { withTestApp } from "../helpers/test-app.js";

// Finding 14: audit rows were written but nothing read them, rows were not chained, nothing
// verified them, and refused authentication was not recorded.
const scratch = mkdtempSync(path.join(os.tmpdir(), "tme-audit-"));
const t = withTestApp();
afterAll(async () => {
  rmSync(scratch, { recursive: true, force: true });
});

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

const rowsWhere = (sql: string, values: unknown[]) =>
  t.app.db.rows<Record<string, unknown>>(`SELECT * FROM audit_log WHERE ${sql} ORDER BY seq`, values);

describe("what is recorded", () => {
  it("a changing call: time, actor id and name, namespace, action, target, request id, source, outcome", async () => {
    const key = await t.keyWith(["tasks:write", "tasks:read"], "team-a");
    const created = await t.request("POST", "/task/create", {
      key,
      body: { name: "noop" },
      headers: { "x-request-id": "req-audit-1" },
    });
    expect(created.status).toBe(201);
    const [row] = await rowsWhere("request_id = $1", ["req-audit-1"]);
    const keyId = (
      await t.app.db.rows<{ id: string }>("SELECT id FROM api_keys WHERE namespace = 'team-a'")
    )[0]!.id;
    expect(row).toMatchObject({
      actor: keyId,
      actor_name: "test-tasks:write+tasks:read",
      namespace: "team-a",
      action: "task.create",
      target: created.body.id,
      request_id: "req-audit-1",
      source_ip: expect.stringMatching(/127\.0\.0\.1/),
      outcome: "ok",
      status: 201,
    });
    expect(Date.now() - (row!.occurred_at as Date).getTime()).toBeLessThan(60_000);
    // Reads are not changes: a GET writes nothing.
    await t.request("GET", `/task/${created.body.id}`, { key, headers: { "x-request-id": "req-audit-2" } });
    expect(await rowsWhere("request_id = $1", ["req-audit-2"])).toEqual([]);
  });

  it("a refused authentication and a refused scope are recorded, without the key that was sent", async () => {
    const wrong = "tme_wrong_key_that_must_not_be_stored_anywhere";
    const res = await t.request("POST", "/task/create", {
      key: wrong,
      body: { name: "noop" },
      headers: { "x-request-id": "req-refused-1" },
    });
    expect(res.status).toBe(401);
    const refused = await rowsWhere("request_id = $1", ["req-refused-1"]);
    expect(refused).toEqual([
      expect.objectContaining({
        actor: null,
        action: "auth.refused",
        target: "task.create",
        outcome: "refused",
        status: 401,
        namespace: "*",
        source_ip: expect.stringMatching(/127\.0\.0\.1/),
        details: { reason: "invalid, revoked or expired API key" },
      }),
    ]);
    expect(JSON.stringify(await t.app.db.rows("SELECT * FROM audit_log"))).not.toContain(wrong);

    const reader = await t.keyWith(["tasks:read"]);
    await t.request("POST", "/task/create", {
      key: reader,
      body: { name: "noop" },
      headers: { "x-request-id": "req-403" },
    });
    expect(await rowsWhere("request_id = $1", ["req-403"])).toEqual([
      expect.objectContaining({
        action: "task.create",
        outcome: "forbidden",
        status: 403,
        details: { error: "forbidden" },
      }),
    ]);
  });
});

describe("the chain", () => {
  it("stays whole under concurrent writers: contiguous seq, each row linked to the one before", async () => {
    const before = (await t.app.db.rows<{ seq: number }>("SELECT seq FROM audit_chain_head"))[0]!.seq;
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        t.request("POST", "/task/create", {
          body: { name: "noop" },
          // Half through the Idempotency-Key path (the audit row rides in the request's transaction).
          headers: i % 2 === 0 ? { "idempotency-key": `concurrent-${i}` } : {},
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(40).fill(201));
    const head = (await t.app.db.rows<{ seq: number }>("SELECT seq FROM audit_chain_head"))[0]!.seq;
    expect(head - before).toBe(40);
    const verification = await verifyAudit(t.app.db);
    expect(verification).toMatchObject({ ok: true, headSeq: head, fromSeq: 1 });
    expect(verification.checked).toBe(head);
  });

  it("refuses UPDATE, DELETE and TRUNCATE", async () => {
    await expect(t.app.db.query("UPDATE audit_log SET target = 'x'")).rejects.toThrow(
      /append-only: UPDATE refused/,
    );
    await expect(t.app.db.query("DELETE FROM audit_log")).rejects.toThrow(/append-only: DELETE refused/);
    await expect(t.app.db.query("TRUNCATE audit_log")).rejects.toThrow(/append-only: TRUNCATE refused/);
    await expect(t.app.db.query("TRUNCATE audit_archives")).rejects.toThrow(/append-only: TRUNCATE refused/);
  });
});

describe("GET /audit", () => {
  it("is admin only, filters by actor, action, target, outcome and time, and pages by cursor", async () => {
    const reader = await t.keyWith(["tasks:read", "tasks:write"]);
    expect((await t.request("GET", "/audit", { key: reader })).status).toBe(403);

    const since = new Date().toISOString();
    const made = await t.request("POST", "/task/create", { key: reader, body: { name: "noop" } });
    await t.request("POST", `/task/${made.body.id}/cancel`, { key: reader });
    const until = new Date(Date.now() + 1000).toISOString();

    const byTarget = await t.request("GET", `/audit?target=${made.body.id}`);
    expect(byTarget.status).toBe(200);
    expect(byTarget.headers.get("cache-control")).toBe("no-store");
    expect(byTarget.body.map((r: { action: string }) => r.action)).toEqual(["task.cancel", "task.create"]);
    expect(byTarget.body[0]).toMatchObject({
      actor_name: "test-tasks:read+tasks:write",
      namespace: "default",
      outcome: "ok",
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      prev_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const actor = byTarget.body[0].actor;
    const byActor = await t.request("GET", `/audit?actor=${actor}&since=${since}&until=${until}`);
    expect(byActor.body.map((r: { target: string }) => r.target)).toEqual([made.body.id, made.body.id]);
    const byAction = await t.request("GET", `/audit?action=task.cancel&actor=${actor}`);
    expect(byAction.body).toHaveLength(1);
    const prefix = await t.request("GET", `/audit?action=task.*&actor=${actor}`);
    expect(prefix.body).toHaveLength(2);
    expect(
      (await t.request("GET", "/audit?outcome=refused")).body.every((r: any) => r.action === "auth.refused"),
    ).toBe(true);
    expect((await t.request("GET", `/audit?until=${since}&target=${made.body.id}`)).body).toEqual([]);
    expect(
      (await t.request("GET", "/audit?namespace=team-a")).body.every((r: any) => r.namespace === "team-a"),
    ).toBe(true);

    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page = await t.request("GET", `/audit?limit=7${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.body.map((r: { seq: number }) => r.seq));
      cursor = page.headers.get("x-next-cursor");
    } while (cursor);
    const all = await t.app.db.rows<{ seq: number }>(
      "SELECT seq FROM audit_log ORDER BY occurred_at DESC, id DESC",
    );
    expect(seen).toEqual(all.map((r) => r.seq));
    expect((await t.request("GET", "/audit?since=yesterday")).status).toBe(400);
  });
});

describe("retention and verification", () => {
  it("archives a segment to a file with an anchor; what remains still verifies", async () => {
    const file = path.join(scratch, "segment-1.jsonl");
    const headBefore = (await t.app.db.rows<{ seq: number }>("SELECT seq FROM audit_chain_head"))[0]!.seq;
    const result = await archiveAudit(t.app.db, new Date(Date.now() + 1000), file);
    expect(result).toMatchObject({ archived: headBefore, throughSeq: headBefore, file });
    const text = readFileSync(file, "utf8");
    expect(createHash("sha256").update(text).digest("hex")).toBe(result!.sha256);
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: headBefore }, (_, i) => i + 1));
    expect(await t.app.db.rows("SELECT seq FROM audit_log WHERE seq <= $1", [headBefore])).toEqual([]);
    // The archive itself is an audit row, chained to the anchor.
    const [anchorRow] = await rowsWhere("action = 'audit.archive'", []);
    expect(anchorRow).toMatchObject({
      seq: headBefore + 1,
      details: expect.objectContaining({ through_seq: headBefore }),
    });

    await t.request("POST", "/task/create", { body: { name: "noop" } });
    expect(await verifyAudit(t.app.db)).toMatchObject({ ok: true, fromSeq: headBefore + 1, checked: 2 });
    const ok = await tme(["audit", "verify"]);
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toContain("audit chain ok: 2 row(s) verified");
    expect(ok.status).toBe(0);
  }, 120_000);

  it("tme audit verify names the first altered row, and a removed row", async () => {
    for (let i = 0; i < 3; i++) await t.request("POST", "/task/create", { body: { name: "noop" } });
    const rows = await t.app.db.rows<{ seq: number; id: string }>(
      "SELECT seq, id::text AS id FROM audit_log ORDER BY seq",
    );
    const victim = rows[2]!;
    // Someone with the database's owner rights goes around the trigger.
    await t.app.db.query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update");
    await t.app.db.query("UPDATE audit_log SET target = 'tsk_forged' WHERE seq = $1", [victim.seq]);
    const altered = await tme(["audit", "verify"]);
    expect(altered.status).toBe(1);
    expect(altered.stdout).toContain(`BROKEN at row seq ${victim.seq} (id ${victim.id})`);
    expect(altered.stdout).toContain("altered");

    // Put a forged hash in too: then the next row's link breaks, and that is named.
    await t.app.db.query(
      `UPDATE audit_log SET hash = audit_row_digest(prev_hash, seq, occurred_at, actor, actor_name, namespace, action,
         target, request_id, source_ip, outcome, status, details) WHERE seq = $1`,
      [victim.seq],
    );
    const relinked = await verifyAudit(t.app.db);
    expect(relinked.broken).toMatchObject({
      seq: victim.seq + 1,
      reason: expect.stringContaining("prev_hash"),
    });

    await t.app.db.query("DELETE FROM audit_log WHERE seq = $1", [victim.seq]);
    await t.app.db.query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update");
    const removed = await verifyAudit(t.app.db);
    expect(removed.broken).toMatchObject({
      seq: victim.seq,
      id: null,
      reason: expect.stringContaining("missing"),
    });
  }, 120_000);
});
