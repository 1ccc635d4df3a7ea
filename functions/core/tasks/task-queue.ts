import type { TaskOutcome } from "../plugins/plugin.js";
import type { Task, TaskProgress } from "./task.js";

/** Who holds one attempt of one task. Every write of a running attempt is fenced by it. */
export interface Lease {
  taskId: string;
  series: number;
  attempt: number;
  workerId: string;
}

export function leaseOf(task: Task, workerId: string): Lease {
  return { taskId: task.id, series: task.series, attempt: task.attempt, workerId };
}

/** Why a specific message's task was not claimed (the message is then done with). */
export type SkipReason = "not_claimable" | "not_due" | "type_paused" | "type_at_limit";

export type ClaimResult = { claimed: Task } | { skipped: SkipReason };

/** What one batched claim took, in claim order. */
export interface ClaimedBatch {
  tasks: Task[];
  /**
   * Candidates the claim found: fewer than asked for means nothing more is claimable now; as
   * many means there may be more, even when a type's limit let fewer be claimed.
   */
  candidates: number;
  /**
   * When the claim found fewer candidates than asked for: the task types paused at that moment,
   * as typeKey()s. A wake-up about new tasks of these types only (queuedTypesOf) can then be
   * ignored: claiming again would scan their queued tasks to take none.
   */
  pausedTypes?: string[];
}

/** One key for a task type in its namespace. */
export function typeKey(namespace: string, name: string): string {
  return JSON.stringify([namespace, name]);
}

/** How an attempt ended, as decided by the core (see run-attempt.ts). */
export type AttemptEnd =
  | { status: "succeeded"; result: unknown }
  | { status: "failed"; error: string }
  | { status: "retrying"; error: string; retryInMs: number }
  | { status: "timed_out"; error: string }
  /** The API cancelled the task; the worker acknowledges by closing its run row. */
  | { status: "cancelled"; error: string }
  /** This worker gives the attempt back (shutdown): like a lost worker, but at once. */
  | { status: "released"; error: string };

/** When an attempt's work began and ended, on the worker's clock. */
export interface WorkInterval {
  startedAt: Date;
  endedAt: Date;
}

/** Result of renewing a lease: still ours, cancelled by the API, or taken over / gone. */
export type HeartbeatResult = "ok" | "cancelled" | "lost";

/**
 * Port: the task queue as the workers see it. Local and cloud both store tasks in Postgres;
 * this is the Postgres implementation's contract (functions/adapters/postgres/task-queue-repository.ts).
 */
export interface TaskQueue {
  /**
   * Up to `max` of the best claimable tasks (priority, then run_at), each claimed for its next
   * attempt, in one transaction; per-type limits and paused types are honoured.
   */
  claimBatch(workerId: string, max: number): Promise<ClaimedBatch>;
  /** Claims one task for one attempt (an SQS message); a duplicate or stale message is skipped. */
  claim(taskId: string, attempt: number, workerId: string): Promise<ClaimResult>;
  /** Extends the lease; tells whether the attempt is still this worker's. */
  heartbeat(lease: Lease): Promise<HeartbeatResult>;
  /** Stores progress and, when `emitEvent`, a task.progress event. False when the lease is gone. */
  progress(lease: Lease, progress: TaskProgress, emitEvent: boolean): Promise<boolean>;
  /**
   * Ends the attempt. False when the lease was lost first (the late result changes nothing).
   * `worked` is when the work really ran, on the worker's clock: the run row records that
   * interval, not the moments of the claim and of the write (a claimed task may wait in the
   * local queue; ends are written in batches).
   */
  finish(
    lease: Lease,
    end: AttemptEnd,
    run: TaskOutcome,
    progress?: TaskProgress,
    worked?: WorkInterval,
  ): Promise<boolean>;
  /** Extends many leases at once (claimed tasks waiting in a local queue); one answer per lease. */
  renewLeases(leases: readonly Lease[]): Promise<HeartbeatResult[]>;
  /** Stamps when a run whose lease was lost really stopped its work (the row may be closed already). */
  recordWorkEnded(lease: Lease, endedAt: Date): Promise<void>;
  /** Takes back running tasks whose lease expired; closes orphaned run rows. */
  reapExpired(limit?: number): Promise<{ requeued: number; failed: number; orphanRuns: number }>;
  /** Moves retrying tasks whose time has come back to queued, with a queue signal. */
  promoteDueRetries(limit?: number): Promise<number>;
  /**
   * Signals again the due queued tasks that had no queue signal for `olderThanSeconds` (a message
   * lost between the outbox and a worker); the cloud's safety net.
   */
  redispatchStranded(olderThanSeconds?: number, limit?: number): Promise<number>;
}
