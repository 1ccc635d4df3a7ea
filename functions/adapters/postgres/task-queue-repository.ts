import type { TaskOutcome } from "../../core/plugins/plugin.js";
import type { TaskProgress } from "../../core/tasks/task.js";
import type {
  AttemptEnd,
  ClaimedBatch,
  ClaimResult,
  HeartbeatResult,
  Lease,
  TaskQueue,
  WorkInterval,
} from "../../core/tasks/task-queue.js";
import type { Db } from "./database.js";
import type { QueueSignalRoute } from "./event-writer.js";
import { GroupCommit } from "./group-commit.js";
import { claimBatch, claimOne, KnownLimits } from "./queue/claim.js";
import {
  type CompleteOptions,
  type Completion,
  completeAttempts,
  recordWorkEnded,
} from "./queue/complete.js";
import { progress, renewLeases } from "./queue/heartbeat.js";
import { promoteDueRetries, redispatchStranded } from "./queue/promote.js";
import { type ReapOptions, reapDeadWorkers, reapExpired, reclaimAll, release } from "./queue/reap.js";

export interface PostgresTaskQueueOptions {
  /** Per-type concurrency limit of a task name (task_plugins.yaml `concurrency`). */
  limitOf: (name: string) => number | undefined;
  leaseSeconds: number;
  /** Cap on a run's stored output tail (shell.output_tail_bytes). */
  outputTailBytes: number;
  /** Runs of one task lost to infrastructure before it fails anyway (worker.max_infra_retries). */
  maxInfraRetries: number;
  /** The clock of event timestamps; default the system's. */
  now?: () => Date;
  /** Where queue signals go (outbox rows for the cloud's SQS, or NOTIFY only locally); default outbox. */
  queueSignals?: QueueSignalRoute;
}

/** Ends of attempts written in one transaction at most (bounds a statement under a burst). */
const COMPLETION_BATCH = 500;

/**
 * The task queue on Postgres (both runtimes: in the cloud SQS only carries the signal, the
 * claim happens here). Each operation is a module of its own under queue/ (claim, complete,
 * heartbeat, reap, promote), sharing queue-sql.ts's definitions of what is claimable, the claim
 * order and what holds a slot; every state change writes its events in the same transaction.
 */
export class PostgresTaskQueue implements TaskQueue {
  private readonly limits: KnownLimits;
  private readonly complete: CompleteOptions;
  private readonly reap: ReapOptions;
  private readonly now: () => Date;
  /**
   * Ends of attempts that arrive together share one transaction (group commit): N slots that
   * finish in the same few milliseconds cost one commit, and each caller is answered once its
   * own end is committed. Fencing is per row, so a batch is the same writes, only fewer trips.
   */
  private readonly completions: GroupCommit<Completion, boolean>;

  constructor(
    private readonly db: Db,
    private readonly options: PostgresTaskQueueOptions,
  ) {
    this.now = options.now ?? (() => new Date());
    this.limits = new KnownLimits(options.limitOf);
    this.complete = {
      outputTailBytes: options.outputTailBytes,
      limits: this.limits,
      now: this.now,
      queueSignals: options.queueSignals ?? "outbox",
    };
    this.reap = { ...this.complete, maxInfraRetries: options.maxInfraRetries };
    this.completions = new GroupCommit(
      (items) => this.db.transaction((tx) => completeAttempts(tx, items, this.complete)),
      { maxBatch: COMPLETION_BATCH, maxInFlight: 2 },
    );
  }

  claimBatch(workerId: string, max: number): Promise<ClaimedBatch> {
    return claimBatch(this.db, workerId, max, this.options.leaseSeconds, this.limits, this.now);
  }

  claim(taskId: string, attempt: number, workerId: string): Promise<ClaimResult> {
    return this.db.transaction((tx) =>
      claimOne(tx, taskId, attempt, workerId, this.options.leaseSeconds, this.limits, this.now),
    );
  }

  async heartbeat(lease: Lease): Promise<HeartbeatResult> {
    const [result] = await renewLeases(this.db, [lease], this.options.leaseSeconds);
    return result ?? "lost";
  }

  renewLeases(leases: readonly Lease[]): Promise<HeartbeatResult[]> {
    return renewLeases(this.db, leases, this.options.leaseSeconds);
  }

  progress(lease: Lease, value: TaskProgress, emitEvent: boolean): Promise<boolean> {
    return progress(this.db, lease, value, emitEvent, this.now);
  }

  finish(
    lease: Lease,
    end: AttemptEnd,
    run: TaskOutcome,
    latest?: TaskProgress,
    worked?: WorkInterval,
  ): Promise<boolean> {
    if (end.status === "released") return release(this.db, lease, end.error, run, this.reap);
    return this.completions.submit({ lease, end, run, progress: latest, worked });
  }

  recordWorkEnded(lease: Lease, endedAt: Date): Promise<void> {
    return recordWorkEnded(this.db, lease, endedAt);
  }

  reapExpired(limit = 100): Promise<{ requeued: number; failed: number; orphanRuns: number }> {
    return reapExpired(this.db, limit, this.reap);
  }

  /** Everything running, back now; rerun after `rerunAfterSeconds` (see queue/reap.ts). */
  reclaimAll(reason: string, rerunAfterSeconds = 0, batch = 500): Promise<number> {
    return reclaimAll(this.db, reason, batch, this.reap, rerunAfterSeconds);
  }

  /** Workers past their presence timeout: their rows go, their running tasks come back now. */
  reapDeadWorkers(): Promise<{ workers: string[]; requeued: number; failed: number }> {
    return reapDeadWorkers(this.db, this.reap);
  }

  promoteDueRetries(limit = 500): Promise<number> {
    return promoteDueRetries(this.db, limit, this.complete.queueSignals);
  }

  redispatchStranded(olderThanSeconds = 120, limit = 500): Promise<number> {
    return redispatchStranded(this.db, olderThanSeconds, limit, this.complete.queueSignals);
  }
}
