import { XMLParser, XMLValidator } from "fast-xml-parser";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { diffAlerts } from "../../functions/core/alerts/alert.js";
import { openWithKey, parseEncryptionKey, sealWithKey } from "../../functions/core/crypto/secret-box.js";
import { assertPublicUrl, isForbiddenAddress } from "../../functions/core/net/address-policy.js";
import { buildWebhookRequest, judgeAttempt } from "../../functions/core/webhooks/deliver.js";
import { toXml } from "../../functions/core/webhooks/payload.js";
import {
  nextRetry,
  nominalRetryDelayMs,
  parseRetryAfter,
} from "../../functions/core/webhooks/retry-policy.js";
import { generateSigningSecret } from "../../functions/core/webhooks/signing.js";
import { subscriptionMatches } from "../../functions/core/webhooks/subscription.js";

describe("isForbiddenAddress", () => {
  it.each([
    "127.0.0.1",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "224.0.0.1",
    "255.255.255.255",
    "0.0.0.0",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "[::1]",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "64:ff9b::a00:1",
    "2002:a00:1::",
    "fe80::1%eth0",
    "not-an-ip",
  ])("refuses %s", (ip) => {
    expect(isForbiddenAddress(ip)).toBe(true);
  });

  it.each(["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])(
    "allows %s",
    (ip) => {
      expect(isForbiddenAddress(ip)).toBe(false);
    },
  );
});

describe("assertPublicUrl", () => {
  const noDns = async () => {
    throw new Error("the resolver must not be asked for an IP literal");
  };
  it.each([
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1/",
    "http://[::1]/",
    "http://10.0.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
  ])("refuses %s with 422 without resolving anything", async (url) => {
    await expect(
      assertPublicUrl(url, { allowPrivate: false, resolve: noDns, field: "callback_url" }),
    ).rejects.toMatchObject({
      status: 422,
      details: [{ path: "callback_url" }],
    });
  });

  it("refuses a name that resolves to loopback (localhost) and one with any private address", async () => {
    await expect(assertPublicUrl("http://localhost:8080/", { allowPrivate: false })).rejects.toMatchObject({
      status: 422,
    });
    const mixed = async () => ["93.184.216.34", "10.1.2.3"];
    await expect(
      assertPublicUrl("https://rebind.example/", { allowPrivate: false, resolve: mixed }),
    ).rejects.toThrow(/10\.1\.2\.3/);
  });

  it("accepts a public name, and anything http(s) when private callbacks are allowed", async () => {
    const pub = async () => ["93.184.216.34"];
    await expect(
      assertPublicUrl("https://example.com/h", { allowPrivate: false, resolve: pub }),
    ).resolves.toMatchObject({
      addresses: ["93.184.216.34"],
    });
    await expect(assertPublicUrl("http://127.0.0.1:9/", { allowPrivate: true })).resolves.toBeTruthy();
  });

  it("refuses other schemes and credentials in the URL even when private callbacks are allowed", async () => {
    await expect(assertPublicUrl("file:///etc/passwd", { allowPrivate: true })).rejects.toMatchObject({
      status: 422,
    });
    await expect(assertPublicUrl("gopher://x/", { allowPrivate: true })).rejects.toMatchObject({
      status: 422,
    });
    await expect(assertPublicUrl("http://u:p@example.com/", { allowPrivate: true })).rejects.toMatchObject({
      status: 422,
    });
  });
});

describe("retry schedule", () => {
  const policy = { baseSeconds: 5, giveUpAfterMs: 24 * 3_600_000 };
  const t0 = new Date("2026-01-01T00:00:00Z");

  it("is about 5 s, 30 s, 2 min, 10 min, 1 h, then hours apart", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => nominalRetryDelayMs(n, 5) / 1000)).toEqual([
      5, 30, 120, 600, 3600, 10_800, 21_600, 43_200, 43_200,
    ]);
  });

  it("jitters each delay by at most 20 %", () => {
    const low = nextRetry(policy, { failedAttempts: 2, firstAttemptAt: t0, now: t0, random: () => 0 });
    const high = nextRetry(policy, { failedAttempts: 2, firstAttemptAt: t0, now: t0, random: () => 1 });
    expect(low).toEqual({ retry: true, at: new Date(t0.getTime() + 24_000) });
    expect(high).toEqual({ retry: true, at: new Date(t0.getTime() + 36_000) });
  });

  it("gives up when the next try would fall after 24 h, about nine attempts in", () => {
    let now = t0;
    let attempts = 0;
    for (;;) {
      attempts++;
      const decision = nextRetry(policy, {
        failedAttempts: attempts,
        firstAttemptAt: t0,
        now,
        random: () => 0.5,
      });
      if (!decision.retry) {
        expect(decision.reason).toMatch(/given up after 9 attempts/);
        break;
      }
      now = decision.at;
    }
    expect(attempts).toBe(9);
    expect(now.getTime() - t0.getTime()).toBeLessThan(24 * 3_600_000);
    expect(now.getTime() - t0.getTime()).toBeGreaterThan(20 * 3_600_000);
  });

  it("waits at least Retry-After (seconds or HTTP date), capped at a day", () => {
    expect(parseRetryAfter("120", t0)).toBe(120_000);
    expect(parseRetryAfter(new Date(t0.getTime() + 90_000).toUTCString(), t0)).toBe(90_000);
    expect(parseRetryAfter("soon", t0)).toBeUndefined();
    expect(parseRetryAfter("99999999", t0)).toBe(24 * 3_600_000);
    const decision = nextRetry(policy, {
      failedAttempts: 1,
      firstAttemptAt: t0,
      now: t0,
      retryAfterMs: 60_000,
      random: () => 0.5,
    });
    expect(decision).toEqual({ retry: true, at: new Date(t0.getTime() + 60_000) });
  });

  it("judges outcomes: 2xx ok, 410 disables, refused address is final, 429 waits, timeouts retry", () => {
    const ctx = { policy, now: t0, chainAttempt: 1, chainStartedAt: t0, retries: true, random: () => 0.5 };
    expect(judgeAttempt({ status: 204, snippet: "", latencyMs: 5 }, ctx).status).toBe("succeeded");
    expect(judgeAttempt({ status: 200, snippet: "", latencyMs: 5, error: "timed out" }, ctx).status).toBe(
      "retrying",
    );
    expect(judgeAttempt({ status: 410, snippet: "", latencyMs: 5 }, ctx)).toMatchObject({
      status: "failed",
      disable: "gone",
    });
    expect(judgeAttempt({ snippet: "", latencyMs: 0, error: "forbidden", refused: true }, ctx).status).toBe(
      "failed",
    );
    expect(
      judgeAttempt({ status: 429, retryAfter: "30", snippet: "", latencyMs: 5 }, ctx).nextAttemptAt,
    ).toEqual(new Date(t0.getTime() + 30_000));
    expect(judgeAttempt({ status: 500, snippet: "", latencyMs: 5 }, { ...ctx, retries: false }).status).toBe(
      "failed",
    );
    const late = new Date(t0.getTime() + 23.9 * 3_600_000);
    expect(
      judgeAttempt({ status: 500, snippet: "", latencyMs: 5 }, { ...ctx, now: late, chainAttempt: 9 }).status,
    ).toBe("given_up");
  });
});

describe("XML payloads", () => {
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@_",
    parseTagValue: false,
    trimValues: false,
  });
  const nasty = `<>&"' ]]> <![CDATA[x]]> &amp; café 日本 🎉`;
  const controls = "a\u0000b\u0001c\u0008d\u000Be\u000Cf\u001Fg\rh\uFFFEi";

  it("is well-formed UTF-8 XML that parses back to the same strings, nasty ones included", () => {
    const xml = toXml({
      id: "evt_1",
      type: "task.failed",
      occurred_at: "2026-01-01T00:00:00.000Z",
      data: {
        task: { name: nasty, labels: { "team name": "ops", "<k>": nasty }, error: controls, tab: "a\tb\nc" },
      },
    });
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?><event>')).toBe(true);
    expect(XMLValidator.validate(xml)).toBe(true);
    const event = parser.parse(xml).event;
    expect(event).toMatchObject({
      id: "evt_1",
      type: "task.failed",
      occurred_at: "2026-01-01T00:00:00.000Z",
    });
    const task = event.data.task;
    expect(task.name).toBe(nasty);
    expect(task.tab).toBe("a\tb\nc");
    // Control characters cannot appear in XML 1.0: such a string travels base64-encoded.
    expect(task.error["@_encoding"]).toBe("base64");
    expect(Buffer.from(task.error["#text"], "base64").toString("utf8")).toBe(controls);
    const entries = task.labels.entry;
    expect(entries.map((e: Record<string, string>) => [e["@_name"], e["#text"]])).toEqual([
      ["team name", "ops"],
      ["<k>", nasty],
    ]);
  });

  it("marks numbers, booleans, nulls and arrays so types can be rebuilt", () => {
    const xml = toXml({
      id: "e",
      type: "t",
      occurred_at: "o",
      data: { n: 1.5, b: false, z: null, a: [1, "x"], e: [] },
    });
    const data = parser.parse(xml).event.data;
    expect(data).toEqual({
      n: { "#text": "1.5", "@_type": "number" },
      b: { "#text": "false", "@_type": "boolean" },
      z: { "@_nil": "true" },
      a: { "@_type": "array", item: [{ "#text": "1", "@_type": "number" }, "x"] },
      e: { "@_type": "array" },
    });
  });
});

describe("signing and auth headers", () => {
  const payload = { id: "evt_1", type: "task.created", occurred_at: "2026-01-01T00:00:00Z", data: { a: 1 } };

  it("signs per Standard Webhooks: the reference Webhook.verify accepts it, and rejects a changed body", () => {
    const secret = generateSigningSecret();
    const { body, headers } = buildWebhookRequest(
      payload,
      "json",
      { type: "hmac", signingSecrets: [secret] },
      new Date(),
    );
    expect(headers["webhook-id"]).toBe("evt_1");
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    expect(new Webhook(secret).verify(body, headers)).toEqual(payload);
    expect(() => new Webhook(secret).verify(body.replace("1", "2"), headers)).toThrow();
    expect(() => new Webhook(generateSigningSecret()).verify(body, headers)).toThrow();
  });

  it("sends bearer and basic credentials, and no signature without hmac", () => {
    const bearer = buildWebhookRequest(payload, "json", { type: "bearer", token: "t0k" }, new Date()).headers;
    expect(bearer.authorization).toBe("Bearer t0k");
    expect(bearer["webhook-signature"]).toBeUndefined();
    const basic = buildWebhookRequest(
      payload,
      "xml",
      { type: "basic", username: "u", password: "p:w" },
      new Date(),
    ).headers;
    expect(basic.authorization).toBe(`Basic ${Buffer.from("u:p:w").toString("base64")}`);
    expect(basic["content-type"]).toBe("application/xml; charset=utf-8");
  });
});

describe("secret box", () => {
  const key = parseEncryptionKey("a".repeat(64), "test");
  it("round-trips, uses a fresh nonce each time, and detects tampering or a wrong key", () => {
    const a = sealWithKey(key, "s3cret");
    const b = sealWithKey(key, "s3cret");
    expect(a).not.toBe(b);
    expect(a).not.toContain("s3cret");
    expect(openWithKey(key, a)).toBe("s3cret");
    const parts = a.split(":");
    parts[3] = Buffer.from("other").toString("base64url");
    expect(() => openWithKey(key, parts.join(":"))).toThrow(/does not open/);
    expect(() => openWithKey(parseEncryptionKey("b".repeat(64), "t"), a)).toThrow(/does not open/);
  });
  it("refuses a key of the wrong size", () => {
    expect(() => parseEncryptionKey("abcd", "TME_ENCRYPTION_KEY")).toThrow(/32 bytes/);
  });
});

describe("subscription matching", () => {
  const event = (type: string, task?: Record<string, unknown>) => ({ type, data: task ? { task } : {} });
  it("matches exact types, family wildcards and *", () => {
    const sub = (event_types: string[]) => ({ event_types, filter: {} });
    expect(subscriptionMatches(sub(["task.failed"]), event("task.failed"))).toBe(true);
    expect(subscriptionMatches(sub(["task.failed"]), event("task.succeeded"))).toBe(false);
    expect(subscriptionMatches(sub(["task.*"]), event("task.succeeded"))).toBe(true);
    expect(subscriptionMatches(sub(["task.*"]), event("alert.raised"))).toBe(false);
    expect(subscriptionMatches(sub(["*"]), event("alert.raised"))).toBe(true);
  });
  it("filters on a name glob and on labels; alerts never match a filtered subscription", () => {
    const sub = { event_types: ["*"], filter: { name: "backup_*", labels: { team: "ops" } } };
    expect(
      subscriptionMatches(sub, event("task.failed", { name: "backup_db", labels: { team: "ops", x: "1" } })),
    ).toBe(true);
    expect(
      subscriptionMatches(sub, event("task.failed", { name: "backup_db", labels: { team: "dev" } })),
    ).toBe(false);
    expect(subscriptionMatches(sub, event("task.failed", { name: "restore", labels: { team: "ops" } }))).toBe(
      false,
    );
    expect(subscriptionMatches(sub, event("alert.raised"))).toBe(false);
  });
});

describe("alert dedup", () => {
  it("raises only new conditions (once each) and resolves cleared ones", () => {
    const open = [
      { id: "alr_1", rule: "task_failed" as const, subject: "tsk_a" },
      { id: "alr_2", rule: "task_failed" as const, subject: "tsk_b" },
    ];
    const holding = ["tsk_a", "tsk_c", "tsk_c"].map((subject) => ({
      rule: "task_failed" as const,
      subject,
      namespace: "default",
      message: "m",
      details: {},
    }));
    const diff = diffAlerts(open, holding);
    expect(diff.raise.map((c) => c.subject)).toEqual(["tsk_c"]);
    expect(diff.resolve.map((a) => a.id)).toEqual(["alr_2"]);
  });
});
