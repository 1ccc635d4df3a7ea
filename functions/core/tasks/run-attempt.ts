import type { AppConfig } from "../../config/schema.js";
import { DatabaseStorageFull, DatabaseUnavailable } from "../errors.js";
import {
  type AttemptLease,
  PermanentTaskError,
  type PluginLogger,
  type PluginResolver,
  type PluginServices,
  type TaskContext,
  type TaskOutcome,
  TaskRunError,
} from "../plugins/plugin.js";
import { earliestOf, LeaseDeadline, leaseMarginMs } from "./lease-deadline.js";
import { retryDelayMs } from "./retry-policy.js";
import { hasAttemptLeft, type Task, type TaskProgress } from "./task.js";
import { type AttemptEnd, type Lease, leaseOf, type TaskQueue } from "./task-queue.js";

/**
 * Why an attempt's AbortSignal fired: its deadline passed, the API cancelled the task, the
 * lease was taken over (this worker was presumed dead), or the process is shutting down.
 */
export type AbortReason = "timeout" | "cancelled" | "lost" | "shutdown";

/** The attempts running in this process, by task id, so a cancel can abort one at once. */
export class RunningAttempts {
  private readonly controllers = new Map<string, AbortController>();

  register(taskId: string, controller: AbortController): void {
    this.controllers.set(taskId, controller);
  }

  unregister(taskId: string, controller: AbortController): void {
    if (this.controllers.get(taskId) === controller) this.controllers.delete(taskId);
  }

  /** Aborts the attempt of this task if it runs here; true if it did. */
  abort(taskId: string, reason: AbortReason): boolean {
    const controller = this.controllers.get(taskId);
    if (!controller || controller.signal.aborted) return false;
    controller.abort(reason);
    return true;
  }

  abortAll(reason: AbortReason): void {
    for (const controller of this.controllers.values())
      if (!controller.signal.aborted) controller.abort(reason);
  }

  get size(): number {
    return this.controllers.size;
  }

  ids(): string[] {
    return [...this.controllers.keys()];
  }
}

export interface AttemptLogger extends PluginLogger {
  child(bindings: Record<string, unknown>): AttemptLogger;
}

export interface AttemptDeps {
  queue: TaskQueue;
  plugins: PluginResolver;
  config: AppConfig;
  logger: AttemptLogger;
  services: PluginServices;
  secret(name: string): Promise<string>;
  running: RunningAttempts;
  /** [0, 1); the retry jitter. */
  random: () => number;
  /** This process's presence in `workers`, when it has one: attempts stop before it runs out too. */
  workerLease?: AttemptLease;
}

/** How the caller started an attempt. */
export interface AttemptStart {
  /**
   * Local-clock instant the claim that took this attempt (or the latest renewal of its lease)
   * was requested: the lease counts from then. Default now.
   */
  leaseRequestedAtMs?: number;
  /**
   * Called once, as soon as the attempt's work is over and before its end is recorded: the
   * slot it held may take the next task while the end is written (in a batch).
   */
  onWorkEnded?: () => void;
}

/** How one attempt ended for the caller: the status written, or "lost" when nothing could be. */
export type AttemptResult = AttemptEnd["status"] | "lost";

/** The results that mean the attempt failed (a span or subsegment marked as an error). */
export const FAILED_ATTEMPT_RESULTS: ReadonlySet<AttemptResult> = new Set([
  "failed",
  "timed_out",
  "retrying",
  "lost",
]);

/** A progress event at most this often per task; the stored progress is always the latest. */
export const PROGRESS_EVENT_INTERVAL_MS = 1000;

/**
 * Runs one claimed attempt of a task to its end: the plugin with its context, the deadline,
 * the lease heartbeat, progress, and the fenced write of how it ended. Retry policy is decided
 * here: a failure with attempts left (and not permanent) is retried after backoff with jitter;
 * a timeout ends the series (timed_out is final, as the lifecycle says: running --deadline-->
 * timed_out), and so does a cancel.
 */
export async function runAttempt(
  deps: AttemptDeps,
  task: Task,
  workerId: string,
  start: AttemptStart = {},
): Promise<AttemptResult> {
  const startedAt = new Date();
  const leaseRequestedAtMs = start.leaseRequestedAtMs ?? startedAt.getTime();
  const lease = leaseOf(task, workerId);
  const leaseDeadline = new LeaseDeadline(
    deps.config.worker.lease_seconds * 1000,
    leaseMarginMs(deps.config.worker.kill_grace_seconds),
    leaseRequestedAtMs,
  );
  const stopBy = deps.workerLease ? earliestOf(leaseDeadline, deps.workerLease) : leaseDeadline;
  const logger = deps.logger.child({ task_id: task.id, attempt: task.attempt, series: task.series });
  const controller = new AbortController();
  deps.running.register(task.id, controller);
  const { signal } = controller;
  const abort = (reason: AbortReason) => {
    if (!signal.aborted) controller.abort(reason);
  };

  const deadline = setTimeout(() => abort("timeout"), task.timeout_seconds * 1000);
  // The lease on this worker's own clock: when no renewal came in time (the database is out
  // of reach, or this process was frozen), the work stops before another worker may take the
  // task over, so two never run it side by side.
  let leaseTimer: NodeJS.Timeout | undefined;
  const armLeaseTimer = () => {
    clearTimeout(leaseTimer);
    leaseTimer = setTimeout(
      () => {
        if (Date.now() < stopBy.deadlineMs) return armLeaseTimer();
        logger.warn("lease not renewed in time; stopping the attempt before another worker takes it");
        abort("lost");
      },
      Math.max(0, stopBy.deadlineMs - Date.now()),
    );
  };
  armLeaseTimer();
  const stopWatchingLease = stopBy.onRenew(armLeaseTimer);
  const beat = () => {
    const requestedAt = Date.now();
    deps.queue.heartbeat(lease).then(
      (state) => {
        if (state === "ok") leaseDeadline.renewed(requestedAt);
        else abort(state);
      },
      // A database blip: the next beat tries again; if the lease runs out meanwhile the
      // reaper takes the task back and the next beat answers "lost".
      (error) => logger.warn({ err: error }, "lease heartbeat failed"),
    );
  };
  // Beats keep the rhythm of the lease's last renewal: an attempt that waited in the local
  // queue beats the first time when a heartbeat is due, not a whole interval after it started.
  const heartbeatMs = deps.config.worker.heartbeat_seconds * 1000;
  let heartbeat: NodeJS.Timeout | undefined;
  const firstBeat = setTimeout(
    () => {
      beat();
      heartbeat = setInterval(beat, heartbeatMs);
    },
    Math.max(0, leaseRequestedAtMs + heartbeatMs - Date.now()),
  );
  const progress = new ProgressReporter(deps.queue, lease, logger);

  let outcome: TaskOutcome = {};
  let failure: unknown;
  let succeeded = false;
  try {
    const resolved = deps.plugins.resolve(task.name, task.command !== null);
    if (!resolved) throw new PermanentTaskError(`no plugin is mapped to "${task.name}" any more`);
    let params: unknown = task.params;
    if (resolved.plugin.paramsSchema) {
      const parsed = resolved.plugin.paramsSchema.safeParse(task.params);
      if (!parsed.success)
        throw new PermanentTaskError(`params no longer fit the plugin: ${parsed.error.message}`);
      params = parsed.data;
    }
    const ctx: TaskContext = {
      taskId: task.id,
      name: task.name,
      namespace: task.namespace,
      params,
      command: task.command,
      attempt: task.attempt,
      maxAttempts: task.max_attempts,
      timeoutSeconds: task.timeout_seconds,
      signal,
      lease: stopBy,
      logger,
      progress: (percent, message) => progress.report(percent, message),
      secret: (name) => deps.secret(name),
      config: deps.config,
      services: deps.services,
    };
    outcome = (await untilSettledOrAbandoned(resolved.plugin.run(ctx), signal, deps.config)) ?? {};
    succeeded = true;
  } catch (error) {
    failure = error;
    if (error instanceof TaskRunError) outcome = error.outcome;
  } finally {
    clearTimeout(deadline);
    clearTimeout(firstBeat);
    clearInterval(heartbeat);
    clearTimeout(leaseTimer);
    stopWatchingLease();
  }
  // The work is over (the plugin returned, or was abandoned after its kill grace); a plugin
  // whose work ran in another process may know the earlier, true instant.
  const workEndedAt = outcome.workEndedAt ?? new Date();
  start.onWorkEnded?.();
  await progress.settle();

  const end = decideEnd(task, signal, succeeded, outcome, failure, deps);
  try {
    if (!end) {
      logger.warn("lease lost while running; another worker owns the task now");
      recordLostEnd(deps, lease, workEndedAt, logger);
      return "lost";
    }
    // While the database is out of reach (a restart, a cut connection) the result is kept and
    // retried until the lease would have expired: the work is done and must not run again.
    const written = await withRetries(
      () => deps.queue.finish(lease, end, outcome, progress.latest, { startedAt, endedAt: workEndedAt }),
      3,
      leaseDeadline.deadlineMs + leaseMarginMs(deps.config.worker.kill_grace_seconds),
    );
    if (!written) {
      logger.warn({ ended: end.status }, "attempt ended after its lease was lost; nothing written");
      recordLostEnd(deps, lease, workEndedAt, logger);
      return "lost";
    }
    logger.debug({ ended: end.status }, "attempt ended");
    return end.status;
  } catch (error) {
    // The lease will expire and the reaper settles the task: nothing is lost, only late.
    logger.error({ err: error }, "could not record how the attempt ended");
    return "lost";
  } finally {
    deps.running.unregister(task.id, controller);
  }
}

/**
 * A lost run's row was closed by whoever took the task back, at that moment; the instant its
 * work really stopped is only known here. Written in the background (the slot is free now),
 * retried for a while: the database may still be out of reach.
 */
function recordLostEnd(deps: AttemptDeps, lease: Lease, endedAt: Date, logger: AttemptLogger): void {
  void (async () => {
    for (let attempt = 1; attempt <= LOST_END_TRIES; attempt++) {
      try {
        await deps.queue.recordWorkEnded(lease, endedAt);
        return;
      } catch (error) {
        if (attempt === LOST_END_TRIES)
          logger.warn({ err: error }, "could not record when the lost run ended");
        else await new Promise((r) => setTimeout(r, Math.min(30_000, 1000 * 2 ** attempt)).unref());
      }
    }
  })();
}
const LOST_END_TRIES = 8;

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

function decideEnd(
  task: Task,
  signal: AbortSignal,
  succeeded: boolean,
  outcome: TaskOutcome,
  failure: unknown,
  deps: AttemptDeps,
): AttemptEnd | undefined {
  if (signal.aborted) {
    const reason = signal.reason as AbortReason;
    if (reason === "lost") return undefined;
    if (reason === "cancelled") return { status: "cancelled", error: "cancelled while running" };
    if (reason === "shutdown") return { status: "released", error: "worker shut down during the attempt" };
    return { status: "timed_out", error: `timed out after ${task.timeout_seconds} s` };
  }
  if (succeeded) return { status: "succeeded", result: outcome.result ?? null };
  const error = errorText(failure);
  const permanent = failure instanceof PermanentTaskError;
  if (permanent || !hasAttemptLeft(task)) return { status: "failed", error };
  return { status: "retrying", error, retryInMs: retryDelayMs(task.attempt, deps.config.retry, deps.random) };
}

/**
 * The plugin's promise, but once the signal fires a plugin gets the kill grace (plus a margin)
 * to stop; one that ignores its signal is abandoned so the attempt still ends on time.
 */
async function untilSettledOrAbandoned(
  run: Promise<TaskOutcome | undefined>,
  signal: AbortSignal,
  config: AppConfig,
): Promise<TaskOutcome | undefined> {
  let onAbort: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const abandoned = new Promise<never>((_, reject) => {
    onAbort = () => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`plugin did not stop within ${config.worker.kill_grace_seconds + 2} s of its abort`),
          ),
        (config.worker.kill_grace_seconds + 2) * 1000,
      );
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([run, abandoned]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}

/**
 * fn, tried `tries` times; a database that is unreachable or cannot write (a full disk) is
 * tried on until `unavailableUntilMs`: the result of work that ran must not be dropped for a
 * condition an operator can clear.
 */
async function withRetries<T>(fn: () => Promise<T>, tries: number, unavailableUntilMs = 0): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (error) {
      const waitMs = Math.min(200 * i, 2000);
      const outage =
        (error instanceof DatabaseUnavailable || error instanceof DatabaseStorageFull) &&
        Date.now() + waitMs < unavailableUntilMs;
      if (i >= tries && !outage) throw error;
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

/**
 * Stores progress as it comes (one write in flight, then the latest value) and lets a
 * task.progress event through at most once a second; a value held back by the limit goes out
 * as soon as the second is over, unless the attempt ends first.
 */
class ProgressReporter {
  latest: TaskProgress | undefined;
  private written: TaskProgress | undefined;
  private emitted: TaskProgress | undefined;
  private inFlight: Promise<void> | undefined;
  private lastEventAt = Number.NEGATIVE_INFINITY;
  private trailing: NodeJS.Timeout | undefined;
  private settled = false;

  constructor(
    private readonly queue: TaskQueue,
    private readonly lease: Lease,
    private readonly logger: AttemptLogger,
  ) {}

  report(percent: number, message?: string): void {
    if (this.settled || !Number.isFinite(percent)) return;
    const clamped = Math.max(0, Math.min(100, Math.round(percent * 100) / 100));
    this.latest =
      message === undefined
        ? { percent: clamped }
        : { percent: clamped, message: String(message).slice(0, 1000) };
    this.flush();
  }

  private flush(): void {
    const value = this.latest;
    if (this.settled || this.inFlight || !value) return;
    const needWrite = value !== this.written;
    const needEvent = value !== this.emitted;
    const now = Date.now();
    const mayEmit = now - this.lastEventAt >= PROGRESS_EVENT_INTERVAL_MS;
    if (needEvent && !mayEmit && !this.trailing) {
      this.trailing = setTimeout(
        () => {
          this.trailing = undefined;
          this.flush();
        },
        this.lastEventAt + PROGRESS_EVENT_INTERVAL_MS - now,
      );
    }
    if (!needWrite && !(needEvent && mayEmit)) return;
    const emit = needEvent && mayEmit;
    if (emit) this.lastEventAt = now;
    this.inFlight = this.queue
      .progress(this.lease, value, emit)
      .then(
        () => undefined,
        (error) => this.logger.warn({ err: error }, "progress not stored"),
      )
      .finally(() => {
        // Marked done even when the write failed: progress is best effort, and a retry loop
        // against a database that is down would only add load.
        this.written = value;
        if (emit) this.emitted = value;
        this.inFlight = undefined;
        this.flush();
      });
  }

  /** Stops reporting and waits for the write in flight; the final value goes with the attempt's end. */
  async settle(): Promise<void> {
    this.settled = true;
    clearTimeout(this.trailing);
    while (this.inFlight) await this.inFlight;
  }
}
