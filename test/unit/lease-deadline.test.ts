import { describe, expect, it } from "vitest";
import { earliestOf, LeaseDeadline, leaseMarginMs } from "../../functions/core/tasks/lease-deadline.js";

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

describe("earliestOf (a task's lease and its process's presence)", () => {
  it("is the earlier deadline, and tells of a renewal only when that one moves", () => {
    const task = new LeaseDeadline(30_000, 2_000, 0); // 28 s
    const presence = new LeaseDeadline(10_000, 2_000, 0); // 8 s
    const both = earliestOf(task, presence);
    expect(both.deadlineMs).toBe(8_000);
    const seen: number[] = [];
    both.onRenew((deadline) => seen.push(deadline));
    // The task's lease moving on changes nothing while the presence is the earlier.
    task.renewed(10_000);
    expect(seen).toEqual([]);
    presence.renewed(2_000);
    expect(both.deadlineMs).toBe(10_000);
    // The presence far ahead: now the task's lease (38 s) is the earlier one.
    presence.renewed(40_000);
    expect(both.deadlineMs).toBe(38_000);
    expect(seen).toEqual([10_000, 38_000]);
  });
});
