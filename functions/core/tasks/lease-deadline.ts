import type { AttemptLease } from "../plugins/plugin.js";

/**
 * The local view of an attempt's lease. The database sets `lease_expires_at` to its own now()
 * plus the lease length when it runs the claim or the heartbeat, which is after this process
 * sent the request; so "sent at + lease length" is never later than the real expiry. The
 * margin leaves time to kill the work (the kill grace) before another worker may take over.
 */
export class LeaseDeadline implements AttemptLease {
  private deadline: number;
  private readonly listeners = new Set<(deadlineMs: number) => void>();

  constructor(
    private readonly leaseMs: number,
    private readonly marginMs: number,
    requestedAtMs: number,
  ) {
    this.deadline = requestedAtMs + leaseMs - marginMs;
  }

  get deadlineMs(): number {
    return this.deadline;
  }

  /** The database confirmed a renewal that was requested at `requestedAtMs` (local clock). */
  renewed(requestedAtMs: number): void {
    const next = requestedAtMs + this.leaseMs - this.marginMs;
    if (next <= this.deadline) return;
    this.deadline = next;
    for (const listener of this.listeners) listener(next);
  }

  onRenew(listener: (deadlineMs: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Time kept between the local deadline and the lease's real expiry: the kill grace plus 1 s. */
export function leaseMarginMs(killGraceSeconds: number): number {
  return killGraceSeconds * 1000 + 1000;
}

/**
 * Two deadlines as one, the earlier: an attempt holds its task's lease and its process's
 * presence in `workers` (functions/local/worker-presence.ts), and must stop before whichever
 * runs out first, since either lets another worker take the task. Renewals are passed on when
 * they move the earlier one.
 */
export function earliestOf(a: AttemptLease, b: AttemptLease): AttemptLease {
  return {
    get deadlineMs() {
      return Math.min(a.deadlineMs, b.deadlineMs);
    },
    onRenew(listener) {
      let last = Math.min(a.deadlineMs, b.deadlineMs);
      const changed = () => {
        const next = Math.min(a.deadlineMs, b.deadlineMs);
        if (next > last) {
          last = next;
          listener(next);
        }
      };
      const offA = a.onRenew(changed);
      const offB = b.onRenew(changed);
      return () => {
        offA();
        offB();
      };
    },
  };
}
