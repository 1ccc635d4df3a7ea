import type { SQSEvent } from "aws-lambda";
import { TASK_CONTROL_CHANNEL, TASK_QUEUED_CHANNEL } from "../adapters/postgres/event-writer.js";
import { PostgresListener } from "../adapters/postgres/listener.js";
import type { AppContext } from "../context.js";
import { RunningAttempts } from "../core/tasks/run-attempt.js";
import type { Task } from "../core/tasks/task.js";
import type { ClaimedBatch } from "../core/tasks/task-queue.js";
import {
  createWorkerHandler,
  defaultWorkerId,
  sqsRecordFor,
  type WorkerOptions,
} from "../handlers/worker.js";
import type { BackgroundService } from "./runtime.js";
import { wakeableLoop } from "./wakeable-loop.js";

export interface WorkerPoolOptions extends Pick<WorkerOptions, "secret" | "random"> {
  /** Slots; default MAX_CONCURRENT_TASKS. */
  slots?: number;
  /** How long stop() lets running attempts finish before handing them back; default worker.shutdown_grace_seconds. */
  stopGraceMs?: number;
  workerId?: string;
}

/**
 * The local worker pool: MAX_CONCURRENT_TASKS slots that claim from Postgres (priority, then
 * run_at; SKIP LOCKED, so several processes share one database) and run each claimed task
 * through the same worker handler the cloud's SQS event source calls.
 *
 * Woken by NOTIFY on tme_task_queued, by a finished attempt, and by a poll every
 * worker.poll_interval_ms: a lost notification or a dropped listener only delays a task.
 * NOTIFY on tme_task_control aborts a cancelled task's attempt at once.
 */
export function workerPool(
  app: AppContext,
  options: WorkerPoolOptions = {},
): BackgroundService & {
  readonly active: number;
  readonly workerId: string;
} {
  const slots = options.slots ?? app.config.app.MAX_CONCURRENT_TASKS;
  const workerId = options.workerId ?? defaultWorkerId("local");
  const running = new RunningAttempts();
  const handle = createWorkerHandler(app, { ...options, workerId, running });
  const listener = new PostgresListener(app.databaseUrl, app.logger);
  const inFlight = new Set<Promise<void>>();
  let active = 0;
  let poll: NodeJS.Timeout | undefined;
  let sequence = 0;

  const runClaimed = (task: Task, leaseRequestedAtMs: number) => {
    const messageId = `local-${task.id}-${task.series}-${task.attempt}-${++sequence}`;
    const event: SQSEvent = { Records: [sqsRecordFor(task, messageId)] };
    const done = handle(event, new Map([[messageId, { task, leaseRequestedAtMs }]]))
      .then(({ batchItemFailures }) => {
        // Locally there is no redelivery: a record that failed leaves its lease to the reaper.
        if (batchItemFailures.length > 0)
          app.logger.warn({ task_id: task.id }, "attempt not recorded; the reaper will settle it");
      })
      .catch((error) => app.logger.error({ err: error, task_id: task.id }, "worker pool"))
      .finally(() => {
        active--;
        inFlight.delete(done);
        wake();
      });
    inFlight.add(done);
  };

  /**
   * Claims while slots are free and work is there, one batch for all the free slots at once;
   * one claimer at a time per pool.
   */
  const claimer = wakeableLoop(
    async (pass) => {
      while (!pass.stopped && active < slots) {
        const want = slots - active;
        active += want; // reserve the slots before the claim, so the count never exceeds slots
        const requestedAt = Date.now();
        let batch: ClaimedBatch | undefined;
        try {
          await app.observer.claim(async () => {
            batch = await app.taskQueue.claimBatch(workerId, want);
            return batch.tasks;
          });
        } catch (error) {
          app.logger.error({ err: error }, "claim failed; retrying on the next wake-up");
        }
        const tasks = batch?.tasks ?? [];
        active -= want - tasks.length;
        for (const task of tasks) runClaimed(task, requestedAt);
        // Fewer candidates than free slots: nothing more is claimable now; wait for a wake-up.
        if (!batch || batch.candidates < want) break;
      }
    },
    (error) => app.logger.error({ err: error }, "worker pool"),
  );
  const wake = () => claimer.wake();

  return {
    name: "worker-pool",
    get active() {
      return active;
    },
    workerId,
    async start() {
      listener
        .on(TASK_QUEUED_CHANNEL, wake)
        .on(TASK_CONTROL_CHANNEL, (taskId) => {
          if (running.abort(taskId, "cancelled"))
            app.logger.info({ task_id: taskId }, "cancel: attempt aborted");
        })
        .onReconnect(wake);
      await listener.start();
      poll = setInterval(wake, app.config.app.worker.poll_interval_ms);
      wake();
    },
    /**
     * Stops claiming, lets running attempts finish for a grace period, then aborts the rest
     * (reason "shutdown": their shell process groups are killed and each task is handed back to
     * the queue with its run row closed as 'lost'), and waits for those writes.
     */
    async stop() {
      const claimsEnded = claimer.stop();
      clearInterval(poll);
      await listener.stop();
      // A claim in progress completes and its task joins the ones in flight.
      await claimsEnded;
      const graceMs = options.stopGraceMs ?? app.config.app.worker.shutdown_grace_seconds * 1000;
      if (inFlight.size > 0)
        app.logger.info(
          { running: inFlight.size, grace_seconds: graceMs / 1000 },
          "shutdown: letting running attempts finish",
        );
      const all = () => Promise.allSettled([...inFlight]);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        all().then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) running.abortAll("shutdown");
      await all();
    },
  };
}

/**
 * The local reaper and retry promoter: every second (or poll interval, if shorter) it takes
 * back tasks whose worker stopped heartbeating and queues retries whose backoff is over.
 */
export function taskMaintenance(app: AppContext): BackgroundService {
  let timer: NodeJS.Timeout | undefined;
  let tick: Promise<void> | undefined;
  const run = async () => {
    try {
      const reaped = await app.taskQueue.reapExpired();
      if (reaped.requeued + reaped.failed + reaped.orphanRuns > 0)
        app.logger.warn(reaped, "reaped expired leases");
      await app.taskQueue.promoteDueRetries();
    } catch (error) {
      app.logger.error({ err: error }, "task maintenance");
    }
  };
  return {
    name: "task-maintenance",
    start() {
      timer = setInterval(
        () => {
          tick ??= run().finally(() => {
            tick = undefined;
          });
        },
        Math.min(1000, app.config.app.worker.poll_interval_ms),
      );
    },
    async stop() {
      clearInterval(timer);
      await tick;
    },
  };
}
