import { describe, expect, it } from "vitest";
import { LeaseDeadline, leaseMarginMs } from "../../functions/core/tasks/lease-deadline.js";

describe("LeaseDeadline", () => {
  it("starts at request time + lease - margin and moves only forward on renewal", () => {
    const lease = new LeaseDeadline(30_000, leaseMarginMs(1), 1_000);
    expect(lease.deadlineMs).toBe(1_000 + 30_000 - 2_000);
    const seen: number[] = [];
    const unsubscribe = lease.onRenew((deadline) => seen.push(deadline));
    lease.renewed(11_000);
    expect(lease.deadlineMs).toBe(39_000);
    // A late answer to an older heartbeat must not pull the deadline back.
    lease.renewed(5_000);
    expect(lease.deadlineMs).toBe(39_000);
    unsubscribe();
    lease.renewed(21_000);
    expect(lease.deadlineMs).toBe(49_000);
    expect(seen).toEqual([39_000]);
  });
});
