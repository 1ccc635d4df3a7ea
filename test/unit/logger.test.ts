import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, lazyChild } from "../../functions/logging/logger.js";

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, stream };
}

describe("logger", () => {
  it("writes one JSON object a line at the configured level", () => {
    const { lines, stream } = capture();
    const logger = createLogger("WARN", stream);
    logger.info("hidden");
    logger.warn({ request_id: "r1" }, "shown");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: "WARN",
      msg: "shown",
      request_id: "r1",
      service: "tme",
    });
  });

  it("never writes secrets, wherever they sit", () => {
    const { lines, stream } = capture();
    const logger = createLogger("DEBUG", stream);
    logger.info({
      password: "p1",
      config: { db: { password: "p2" }, databaseUrl: "postgres://u:p3@h/d" },
      headers: { authorization: "Bearer p4" },
      subscription: { signing_secret: "p5", token: "p6" },
    });
    const text = lines.join("");
    for (const secret of ["p1", "p2", "p3", "p4", "p5", "p6"]) expect(text).not.toContain(secret);
    expect(text).toContain("[redacted]");
  });

  it("a lazy child is made on its first use only, and its lines carry its bindings, redacted as any", () => {
    const { lines, stream } = capture();
    const parent = createLogger("INFO", stream);
    let made = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => {
      made++;
      return child(...args);
    }) as typeof parent.child;
    const logger = lazyChild(parent, { request_id: "r2", token: "t1" });
    expect(made).toBe(0);
    logger.info({ n: 1 }, "first");
    logger.warn("second");
    expect(made).toBe(1);
    expect(lines.map((l) => JSON.parse(l))).toMatchObject([
      { msg: "first", n: 1, request_id: "r2", token: "[redacted]" },
      { msg: "second", level: "WARN", request_id: "r2" },
    ]);
    expect(logger.isLevelEnabled("debug")).toBe(false);
  });
});
