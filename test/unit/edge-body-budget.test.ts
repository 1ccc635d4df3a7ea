import { describe, expect, it } from "vitest";
import { byteBudget } from "../../functions/local/http-server.js";

/** Lets pending promise callbacks run. */
const settle = () => new Promise((r) => setImmediate(r));

describe("the edge's body budget", () => {
  it("lets as many small bodies in at once as the bytes allow, not a fixed count", async () => {
    const budget = byteBudget(1000);
    const releases = await Promise.all(Array.from({ length: 10 }, () => budget.acquire(100)));
    let eleventh = false;
    const waiting = budget.acquire(100).then((release) => {
      eleventh = true;
      return release;
    });
    await settle();
    expect(eleventh).toBe(false);
    releases[0]!();
    (await waiting)();
    expect(eleventh).toBe(true);
  });

  it("serves in arrival order: a large request is not passed over by small ones behind it", async () => {
    const budget = byteBudget(1000);
    const first = await budget.acquire(600);
    const order: string[] = [];
    const noted = (name: string) => (release: () => void) => {
      order.push(name);
      return release;
    };
    const large = budget.acquire(800).then(noted("large"));
    const small = budget.acquire(100).then(noted("small"));
    await settle();
    expect(order).toEqual([]); // the small one fits, but waits behind the large one
    first();
    (await large)();
    (await small)();
    expect(order).toEqual(["large", "small"]);
  });

  it("gives a request larger than the whole budget the whole budget, and a release counts once", async () => {
    const budget = byteBudget(1000);
    const huge = await budget.acquire(5000);
    let next = false;
    const after = budget.acquire(1).then((release) => {
      next = true;
      return release;
    });
    await settle();
    expect(next).toBe(false);
    huge();
    huge();
    const release = await after;
    expect(next).toBe(true);
    // The double release above gave back the budget once: 999 more bytes fit, 1000 do not.
    const rest = await budget.acquire(999);
    let over = false;
    void budget.acquire(1).then(() => {
      over = true;
    });
    await settle();
    expect(over).toBe(false);
    release();
    rest();
  });
});
