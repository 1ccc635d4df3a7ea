import { describe, expect, it } from "vitest";
import { RequestLimits, TokenBuckets } from "../../functions/core/auth/rate-limit.js";
import { type TestApp, withTestApp } from "../helpers/test-app.js";

// Finding 8: 500 wrong keys in 0.7 s, no 429; the bootstrap key could be 16 characters (that
// half is test/unit/config.test.ts: under 32 characters stops TME at start).
describe("token buckets (time passed in)", () => {
  it("refill at their rate up to their size and say how long to wait", () => {
    let now = 0;
    const buckets = new TokenBuckets(3, 1, () => now);
    expect([buckets.take("k"), buckets.take("k"), buckets.take("k")]).toEqual([0, 0, 0]);
    expect(buckets.take("k")).toBe(1);
    now += 500;
    expect(buckets.take("k")).toBe(1);
    now += 500;
    expect(buckets.take("k")).toBe(0);
    expect(buckets.take("other")).toBe(0);
    now += 60_000;
    expect([buckets.take("k"), buckets.take("k"), buckets.take("k"), buckets.take("k")]).toEqual([
      0, 0, 0, 1,
    ]);
  });

  it("a source that spent its refused authentications waits a whole token's time", () => {
    let now = 0;
    const limits = new RequestLimits(
      { auth_failures_per_minute: 2, key_requests_per_second: 0, key_burst: 1 },
      () => now,
    );
    expect(limits.sourceBlockedFor("1.2.3.4")).toBe(0);
    limits.recordFailure("1.2.3.4");
    expect(limits.recordFailure("1.2.3.4")).toBe(30);
    expect(limits.sourceBlockedFor("1.2.3.4")).toBe(30);
    expect(limits.sourceBlockedFor("5.6.7.8")).toBe(0);
    now += 30_000;
    expect(limits.sourceBlockedFor("1.2.3.4")).toBe(0);
    // key_requests_per_second 0: no per-key limit.
    for (let i = 0; i < 100; i++) expect(limits.takeRequest("key")).toBe(0);
  });
});

describe("over HTTP", () => {
  const t = withTestApp({
    app: { security: { auth_failures_per_minute: 5, key_requests_per_second: 1, key_burst: 4 } } as never,
  });

  it("a key holder is limited by its token bucket: 429 with Retry-After, others unaffected", async () => {
    const key = await t.keyWith(["tasks:read"]);
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<TestApp["request"]>> | undefined;
    for (let i = 0; i < 8; i++) {
      const res = await t.request("GET", "/tasks", { key });
      statuses.push(res.status);
      if (res.status === 429) limited ??= res;
    }
    // The bucket holds 4 and refills 1 a second: at least the 5th request on is refused.
    expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(statuses).toContain(429);
    expect(limited!.body.error.code).toBe("rate_limited");
    expect(Number(limited!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Another key has its own bucket.
    expect((await t.request("GET", "/tasks", { key: await t.keyWith(["tasks:read"]) })).status).toBe(200);
  });

  it("wrong keys from one source: 401 five times, then 429 with Retry-After for whatever it sends", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      statuses.push((await t.request("GET", "/tasks", { key: `guess-${i}` })).status);
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toEqual(Array(7).fill(429));
    const blocked = await t.request("GET", "/tasks", { key: "guess-again" });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Refused outright: a right key from this source gets 429 too, so 429 says nothing about a guess.
    expect((await t.request("GET", "/tasks", { key: await t.keyWith(["admin"]) })).status).toBe(429);
    // Each 401 is an audit row; the 429s that follow are not (they cost the attacker nothing to send).
    const rows = await t.app.db.rows<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_log WHERE action = 'auth.refused'",
    );
    expect(rows[0]!.n).toBe(5);
  });
});
