import { describe, expect, it } from "vitest";
import { withFields } from "../../functions/core/objects.js";

describe("withFields", () => {
  it("is the spread it replaces: the same keys, values and order, and a new object", () => {
    const base = { id: "tsk_1", status: "queued", params: { a: 1 } };
    const merged = withFields(base, { created_at: "now", status: "running" });
    expect(merged).toEqual({ ...base, created_at: "now", status: "running" });
    expect(Object.keys(merged)).toEqual(Object.keys({ ...base, created_at: "now", status: "running" }));
    expect(merged).not.toBe(base);
    expect(base).toEqual({ id: "tsk_1", status: "queued", params: { a: 1 } });
    // Shallow, as a spread: nested objects are shared.
    expect(merged.params).toBe(base.params);
  });
});
