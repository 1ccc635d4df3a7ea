import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { withTestApp } from "../helpers/test-app.js";
import { startTme, type TmeProcess } from "../helpers/tme-process.js";
import { waitFor } from "../helpers/wait.js";

// Finding 5: the local edge buffered up to 10 MB of an unauthenticated body before checking the
// key or the 256 KiB limit, with no connection cap: 40 sockets each sending 9 MiB took TME from
// 172 to 495 MB.

interface RawExchange {
  /** Everything the server sent before closing (or before `until` said enough). */
  received: string;
  closed: boolean;
  /** Body bytes this client managed to write before the answer came. */
  sent: number;
}

/**
 * A client as an attacker would write it: raw headers, then the body in 64 KiB writes as fast as
 * the socket takes them, stopping when the server answers or closes.
 */
function rawRequest(
  port: number,
  head: string,
  bodyBytes: number,
  options: { stopAfterAnswer?: boolean; timeoutMs?: number } = {},
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    let sent = 0;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ received, closed, sent });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 30_000);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (!done && sent < bodyBytes && received === "") {
        const n = Math.min(chunk.length, bodyBytes - sent);
        sent += n;
        if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          socket.once("drain", pump);
          return;
        }
      }
    };
    socket.on("connect", () => {
      socket.write(head);
      pump();
    });
    socket.on("data", (d) => {
      received += d.toString("latin1");
      if (options.stopAfterAnswer !== false && received.includes("\r\n\r\n")) finish(false);
    });
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
  });
}

const head = (port: number, key: string | undefined, length: number | "chunked" = 9 * 1024 * 1024) =>
  [
    "POST /task/create HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "Content-Type: application/json",
    ...(key ? [`Authorization: Bearer ${key}`] : []),
    length === "chunked" ? "Transfer-Encoding: chunked" : `Content-Length: ${length}`,
    "",
    "",
  ].join("\r\n");

const statusOf = (exchange: RawExchange) => Number(/^HTTP\/1\.1 (\d{3})/.exec(exchange.received)?.[1]);

describe("the local edge, in process", () => {
  let port: number;
  const t = withTestApp({
    app: {
      security: {
        max_connections: 64,
        max_connections_per_source: 6,
        header_timeout_seconds: 1,
        body_timeout_seconds: 1,
      },
    } as never,
  });
  beforeAll(async () => {
    port = Number(new URL(t.url).port);
  });

  it("authenticates from the headers: a wrong key gets 401 before its body is sent", async () => {
    // Content-Length promises 9 MiB; the client sends none of it and still gets its answer.
    const exchange = await rawRequest(port, head(port, "tme_wrong"), 0);
    expect(statusOf(exchange)).toBe(401);
    expect(exchange.received).toMatch(/connection: close/i);
    expect(exchange.received).toMatch(/x-content-type-options: nosniff/i);
  });

  it("a declared body over 256 KiB is 413 at once, before a byte of it", async () => {
    const exchange = await rawRequest(port, head(port, t.adminKey), 0);
    expect(statusOf(exchange)).toBe(413);
    expect(exchange.received).toContain("payload_too_large");
  });

  it("a chunked body is counted as it streams: 413 as it passes the limit, long before it ends", async () => {
    const chunked = (bytes: number) => {
      // One chunk per 64 KiB, in chunked framing.
      const parts: string[] = [];
      for (let sent = 0; sent < bytes; sent += 65536) parts.push(`10000\r\n${"a".repeat(65536)}\r\n`);
      return parts.join("");
    };
    const socketAnswer = await new Promise<string>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.write(head(port, t.adminKey, "chunked"));
        // 1 MiB of a 9 MiB body, then wait: the answer must come without the rest.
        socket.write(chunked(1024 * 1024));
      });
      let got = "";
      socket.on("data", (d) => {
        got += d.toString();
        if (got.includes("\r\n\r\n")) {
          socket.destroy();
          resolve(got);
        }
      });
      socket.on("error", () => resolve(got));
    });
    expect(socketAnswer).toMatch(/^HTTP\/1\.1 413/);
  });

  it("a body under the limit still works, and one byte over is refused", async () => {
    const ok = await t.request("POST", "/task/create", {
      // 200 KiB of JSON (trailing whitespace is valid JSON): under the limit, accepted.
      rawBody: JSON.stringify({ name: "noop" }) + " ".repeat(200 * 1024),
      headers: { "content-type": "application/json" },
    });
    expect(ok.status).toBe(201);
    const over = await rawRequest(port, head(port, t.adminKey, 256 * 1024 + 1), 256 * 1024 + 1, {
      timeoutMs: 10_000,
    });
    expect(statusOf(over)).toBe(413);
  });

  it("cuts off a client that is slow to send its headers or its body", async () => {
    const slowHeaders = await rawRequest(port, "POST /task/create HTTP/1.1\r\nHost: x\r\n", 0, {
      stopAfterAnswer: false,
    });
    expect(slowHeaders.closed).toBe(true);
    const slowBody = await rawRequest(port, head(port, t.adminKey, 100), 10, { stopAfterAnswer: false });
    expect(slowBody.closed).toBe(true);
    expect(slowBody.received === "" || /^HTTP\/1\.1 408/.test(slowBody.received)).toBe(true);
  });

  it("caps connections per source: the one over the cap is closed unanswered", async () => {
    const sockets = await Promise.all(
      Array.from(
        { length: 6 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(port, "127.0.0.1", () => resolve(s));
          }),
      ),
    );
    try {
      const extra = await rawRequest(port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 0, {
        stopAfterAnswer: false,
      });
      expect(extra.closed).toBe(true);
      expect(extra.received).toBe("");
    } finally {
      for (const s of sockets) s.destroy();
    }
    // Once they are gone, the same source is served again.
    const health = await waitFor(
      "a slot to free up",
      async () => {
        const res = await t.request("GET", "/health", { key: null }).catch(() => undefined);
        return res?.status === 200 ? res : undefined;
      },
      10_000,
    );
    expect(health.status).toBe(200);
  });
});

describe("the local edge, clients that leave while waiting for a body slot", () => {
  const t = withTestApp();
  let port: number;
  beforeAll(async () => {
    port = Number(new URL(t.url).port);
  });

  it("does not keep their slots: a create sent afterwards is answered", async () => {
    // Seen when a load generator stopped with 50 creates in flight: the requests still queued
    // for one of the 16 body slots got theirs after their socket had closed, and kept it.
    const key = await t.keyWith(["tasks:write"]);
    const body = JSON.stringify({ name: "noop", params: {} });
    const request = [
      "POST /task/create HTTP/1.1",
      `Host: 127.0.0.1:${port}`,
      "Content-Type: application/json",
      `Authorization: Bearer ${key}`,
      `Content-Length: ${Buffer.byteLength(body)}`,
      "",
      body,
    ].join("\r\n");
    const sockets = await Promise.all(
      Array.from(
        { length: 48 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(port, "127.0.0.1", () => s.write(request, () => resolve(s)));
            s.on("error", () => {});
          }),
      ),
    );
    for (const s of sockets) s.destroy();
    const res = await Promise.race([
      t.request("POST", "/task/create", { body: { name: "noop", params: {} } }),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000)),
    ]);
    expect(res?.status).toBe(201);
  });
});

describe("40 sockets sending 9 MiB each, against `tme start`", () => {
  let database: TestDatabase;
  let tme: TmeProcess;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "tme-edge-"));
  const key = "edge-limits-bootstrap-key-0123456789abcdef";
  beforeAll(async () => {
    database = await createTestDatabase();
    tme = await startTme({ DATABASE_URL: database.url, TME_DATA_DIR: dataDir, TME_BOOTSTRAP_API_KEY: key });
  }, 90_000);
  afterAll(async () => {
    await tme?.stop();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const rssMb = () => {
    const status = readFileSync(`/proc/${tme.child.pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
  };

  it("moves TME's RSS by under 50 MB, with and without a valid key (figures printed)", async () => {
    const port = Number(new URL(tme.url).port);
    // Warm the paths once, so the first request's lazy loading is not counted as the attack's.
    await rawRequest(port, head(port, key), 0);
    await rawRequest(port, head(port, "tme_wrong"), 0);
    const figures: Record<string, { before: number; peak: number; statuses: Record<string, number> }> = {};
    // Valid-key attacks first: the unauthenticated ones spend this source's refused-auth budget,
    // after which everything from it is 429 (as it should be).
    for (const [label, sentKey, length] of [
      ["valid key, honest Content-Length", key, 9 * 1024 * 1024],
      ["valid key, Content-Length lying low (256 KiB), 9 MiB sent", key, 256 * 1024],
      ["no key", undefined, 9 * 1024 * 1024],
      ["wrong key", "tme_wrong_guess", 9 * 1024 * 1024],
    ] as const) {
      const before = rssMb();
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssMb());
      }, 20);
      const exchanges = await Promise.all(
        Array.from({ length: 40 }, () =>
          rawRequest(port, head(port, sentKey, length), 9 * 1024 * 1024, {
            stopAfterAnswer: false,
            timeoutMs: 60_000,
          }),
        ),
      );
      clearInterval(sampler);
      peak = Math.max(peak, rssMb());
      const statuses: Record<string, number> = {};
      for (const e of exchanges) {
        const s = String(statusOf(e) || "closed");
        statuses[s] = (statuses[s] ?? 0) + 1;
      }
      figures[label] = { before: Math.round(before), peak: Math.round(peak), statuses };
    }
    console.log("edge RSS (MB) per attack of 40 x 9 MiB:", JSON.stringify(figures, null, 1));
    const lying = "valid key, Content-Length lying low (256 KiB), 9 MiB sent";
    for (const [label, f] of Object.entries(figures)) {
      // The finding's attack (a 9 MiB body, with or without a key) stays under 50 MB. The lying
      // client gets 40 bodies of the full 256 KiB accepted and parsed: that costs a few copies of
      // each until the next GC (35-45 MB measured), so it is bounded more loosely.
      expect(f.peak - f.before, label).toBeLessThan(label === lying ? 100 : 50);
      // Nothing was accepted: each got a refusal or was cut off (a client still writing when its
      // socket is closed may lose the answer to the reset; it was refused all the same).
      const refusals = Object.entries(f.statuses)
        .filter(([s]) => s === "closed" || (Number(s) >= 400 && Number(s) < 500))
        .reduce((n, [, count]) => n + count, 0);
      expect(refusals, label).toBe(40);
    }
    const honest = figures["valid key, honest Content-Length"]!.statuses;
    expect((honest["413"] ?? 0) + (honest.closed ?? 0)).toBe(40);
    expect(honest["413"]).toBeGreaterThan(0);
    const unauthenticated = figures["no key"]!.statuses;
    expect(
      (unauthenticated["401"] ?? 0) + (unauthenticated["429"] ?? 0) + (unauthenticated.closed ?? 0),
    ).toBe(40);
    // TME still answers afterwards.
    const health = await fetch(`${tme.url}/health`);
    expect(health.status).toBe(200);
  }, 180_000);
});
