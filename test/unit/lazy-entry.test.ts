import type { Context } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { lazyEntry } from "../../functions/adapters/aws/lazy-entry.js";

const context = {} as Context;

describe("lazyEntry", () => {
  it("loads the entry on the first invocation only, and again after a load that failed", async () => {
    let loads = 0;
    const handler = lazyEntry(async () => {
      loads++;
      if (loads === 1) throw new Error("Secrets Manager unreachable");
      return async (event: number) => event * 2;
    });
    expect(loads).toBe(0);
    await expect(handler(1, context)).rejects.toThrow("Secrets Manager unreachable");
    expect(await handler(2, context)).toBe(4);
    expect(await handler(3, context)).toBe(6);
    expect(loads).toBe(2);
  });
});
