import type { SQSEvent } from "aws-lambda";
import { TASK_CONTROL_CHANNEL, TASK_QUEUED_CHANNEL } from "../adapters/postgres/event-writer.js";
import { PostgresListener } from "../adapters/postgres/listener.js";
import type { AppContext } from "../context.js";
import { RunningAttempts } from "../core/tasks/run-attempt.js";
import type { Task } from "../core/tasks/task.js";
import { type ClaimedBatch, leaseOf, typeKey } from "../core/tasks/task-queue.js";
import {
  createWorkerHandler,
  defaultWorkerId,
  sqsRecordFor,
  type WorkerOptions,
} from "../handlers/worker.js";
import type { BackgroundService } from "./runtime.js";
import { workerPresence } from "./worker-presence.js";

export interface WorkerPoolOptions extends Pick<WorkerOptions, "secret" | "random"> {
  /** Slots; default MAX_CONCURRENT_TASKS. */
  slots?: number;
  /** How long stop() lets running attempts finish before handing them back; default worker.shutdown_grace_seconds. */
  stopGraceMs?: number;
  workerId?: string;
  /** Claimed tasks held ahead of the free slots at most; default worker.local_queue_size (0: none). */
  localQueueSize?: number;
}

/**
 * How far ahead the local queue claims. A claim is sent once the queue holds no more than the
 * slots take during one claim (at the rate they have been finishing tasks), and fills it up to
 * this many claims' worth: the slots never wait for a claim while short tasks keep coming, and a
 * claimed task waits for a slot at most about this many claims' time, which bounds how long a task
 * of higher priority created meanwhile can be passed by one already claimed. With slow tasks the
 * rate is low and the queue stays empty. More than two lets the queue grow from nothing (each
 * claim brings more than the slots used while it was under way) until worker.local_queue_size.
 */
export const LOCAL_QUEUE_CLAIMS_AHEAD = 4;

/**
 * Claims under way at once per pool. One: a second claim under way beside the first takes the
 * tasks after the first's, and could bring them back first (measured: no faster on this machine,
 * and a priority-order test caught the inversion).
 */
const MAX_CLAIMS_IN_FLIGHT = 1;

/** Claims are at most this big (a statement's size), whatever the free room. */
const MAX_CLAIM_BATCH = 500;

/** A claimed task waiting in the local queue for a slot. */
interface QueuedAttempt {
  task: Task;
  /** Local-clock instant its claim, or the latest renewal of its lease, was requested. */
  leaseRequestedAtMs: number;
}

/**
 * The local worker pool: MAX_CONCURRENT_TASKS slots fed from Postgres (priority, then run_at;
 * SKIP LOCKED, so several processes share one database), each claimed task run through the same
 * worker handler the cloud's SQS event source calls.
 *
 * Claims come in batches: all the free slots at once, plus a bounded local queue ahead of
 * them when tasks are short (what the slots will take within LOCAL_QUEUE_CLAIMS_AHEAD claims' time
 * at their recent rate, at most worker.local_queue_size). A slot takes the next queued task the moment its
 * work is over; the end is written in a batch meanwhile (see PostgresTaskQueue.finish). A queued
 * task is claimed (running, leased, its run open and task.started written), so it holds its
 * type's slot while it waits; its lease is renewed with the others' in one statement every
 * half heartbeat, so it cannot expire before the task starts (docs/engine.md).
 *
 * Woken by NOTIFY on tme_task_queued, by a slot that frees, and by a poll every
 * worker.poll_interval_ms: a lost notification or a dropped listener only delays a task.
 * NOTIFY on tme_task_control aborts a cancelled task's attempt at once (or drops it from the
 * local queue, closing its run).
 */
export function workerPool(
  app: AppContext,
  options: WorkerPoolOptions = {},
): BackgroundService & {
  /** Attempts this pool holds: running, waiting in its local queue, or having their end written. */
  readonly active: number;
  /** Claimed tasks waiting in its local queue for a slot. */
  readonly queued: number;
  readonly workerId: string;
} {
  const worker = app.config.app.worker;
  const slots = options.slots ?? app.config.app.MAX_CONCURRENT_TASKS;
  const localQueueSize = options.localQueueSize ?? worker.local_queue_size;
  const workerId = options.workerId ?? defaultWorkerId("local");
  const running = new RunningAttempts();
  const presence = workerPresence(app, {
    workerId,
    slots,
    // Another process took this one for dead and its tasks back: none of them is ours now,
    // running or waiting in the local queue.
    onDeclaredDead: () => {
      running.abortAll("lost");
      for (const entry of [...queue]) drop(entry.task.id, false);
    },
  });
  const handle = createWorkerHandler(app, { ...options, workerId, running, workerLease: presence.lease });
  const listener = new PostgresListener(app.databaseUrl, app.logger);
  const inFlight = new Set<Promise<void>>();
  const queue: QueuedAttempt[] = [];
  /** Slots taken by attempts whose work is not over. */
  let executing = 0;
  /** Attempts whose work is over and whose end is being written. */
  let finishing = 0;
  let stopping = false;
  let poll: NodeJS.Timeout | undefined;
  let renewal: NodeJS.Timeout | undefined;
  let sequence = 0;
  const rate = new FinishRate();
  /** How long a claim takes, smoothed (ms). */
  let claimMs = 0;

  /** How many tasks the slots take during one claim, at their recent rate. */
  const perClaim = () => (rate.perSecond() * claimMs) / 1000;

  const start = ({ task, leaseRequestedAtMs }: QueuedAttempt) => {
    executing++;
    let holdsSlot = true;
    // A freed slot is room for a claim (claimMore); it is new work only for a limited type, whose
    // next task a full slot held back (wake). A type without a limit gets no more claimable for it:
    // waking would send a claim that finds nothing whenever the queue is empty, and the one that
    // a create's NOTIFY starts would wait for it (MAX_CLAIMS_IN_FLIGHT).
    const limited = app.plugins.concurrencyOf(task.name) !== undefined;
    const slotFreed = () => (limited ? wake() : claimMore());
    const freeSlot = () => {
      if (!holdsSlot) return;
      holdsSlot = false;
      executing--;
      finishing++;
      rate.ended();
      dispatch();
      slotFreed();
    };
    const messageId = `local-${task.id}-${task.series}-${task.attempt}-${++sequence}`;
    const event: SQSEvent = { Records: [sqsRecordFor(task, messageId)] };
    const done = handle(event, new Map([[messageId, { task, leaseRequestedAtMs, onWorkEnded: freeSlot }]]))
      .then(({ batchItemFailures }) => {
        // Locally there is no redelivery: a record that failed leaves its lease to the reaper.
        if (batchItemFailures.length > 0)
          app.logger.warn({ task_id: task.id }, "attempt not recorded; the reaper will settle it");
      })
      .catch((error) => app.logger.error({ err: error, task_id: task.id }, "worker pool"))
      .finally(() => {
        freeSlot();
        finishing--;
        inFlight.delete(done);
        slotFreed();
      });
    inFlight.add(done);
  };

  /**
   * Into the local queue in the order claimed (each claim's tasks come in the line's order, fair
   * between namespaces), except that a task claimed later but of higher priority (created after
   * the earlier claim) goes ahead of the queued ones it outranks. Equal priorities keep their
   * order: sorting them by age would undo the namespaces' turns.
   */
  const enqueue = (entry: QueuedAttempt) => {
    let at = queue.length;
    while (at > 0 && entry.task.priority > queue[at - 1]!.task.priority) at--;
    queue.splice(at, 0, entry);
  };

  /** Free slots take queued tasks, the head first (the queue is in the line's order). */
  const dispatch = () => {
    while (executing < slots && queue.length > 0) start(queue.shift()!);
  };

  /**
   * Claims while there is room (free slots plus local-queue headroom) and work is there, with up
   * to MAX_CLAIMS_IN_FLIGHT claims under way at once. The local queue is refilled once it is down to what the slots
   * take during one claim, so claims come in batches (see LOCAL_QUEUE_CLAIMS_AHEAD). A claim that
   * found fewer candidates than it asked for means nothing more is claimable now: claiming waits
   * for the next wake-up (NOTIFY, a freed slot, the poll), unless one came while it was under way.
   */
  let claimsInFlight = 0;
  /** Tasks the claims under way may bring. */
  let reserved = 0;
  let wakes = 0;
  let exhaustedAt = -1;
  const claims = new Set<Promise<void>>();
  /** The types paused when a claim last found less than it asked for (see onlyPausedTypes). */
  let pausedTypes = new Set<string>();
  const claimMore = () => {
    while (!stopping && claimsInFlight < MAX_CLAIMS_IN_FLIGHT && exhaustedAt !== wakes) {
      const during = perClaim();
      const limit = Math.min(localQueueSize, Math.floor(during * LOCAL_QUEUE_CLAIMS_AHEAD));
      const room = slots - executing + limit - queue.length - reserved;
      // Ends waiting to be written are bounded too: a database slow to commit slows claims.
      if (room <= 0 || queue.length > during || finishing > slots + localQueueSize) return;
      const want = Math.min(room, MAX_CLAIM_BATCH);
      const generation = wakes;
      reserved += want;
      claimsInFlight++;
      const claim = claimOnce(want)
        .then((found) => {
          if (found < want) exhaustedAt = generation;
        })
        .finally(() => {
          reserved -= want;
          claimsInFlight--;
          claims.delete(claim);
          claimMore();
        });
      claims.add(claim);
    }
  };
  /** One claim of up to `want` tasks into the local queue; answers how many candidates it found. */
  const claimOnce = async (want: number): Promise<number> => {
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
    const took = Date.now() - requestedAt;
    claimMs = claimMs === 0 ? took : (claimMs * 3 + took) / 4;
    if (batch?.pausedTypes) pausedTypes = new Set(batch.pausedTypes);
    for (const task of batch?.tasks ?? []) enqueue({ task, leaseRequestedAtMs: requestedAt });
    dispatch();
    return batch?.candidates ?? 0;
  };
  const wake = () => {
    wakes++;
    claimMore();
  };

  /**
   * Renews the leases of queued tasks claimed (or last renewed) over half a heartbeat ago, in
   * one statement. One the API cancelled meanwhile leaves the queue with its run closed; one
   * taken over (its lease had expired) just leaves it.
   */
  const renewQueued = async () => {
    const dueBefore = Date.now() - (worker.heartbeat_seconds * 1000) / 2;
    const due = queue.filter((q) => q.leaseRequestedAtMs < dueBefore);
    if (due.length === 0) return;
    const requestedAt = Date.now();
    let results: Awaited<ReturnType<typeof app.taskQueue.renewLeases>>;
    try {
      results = await app.taskQueue.renewLeases(due.map((q) => leaseOf(q.task, workerId)));
    } catch (error) {
      app.logger.warn({ err: error }, "renewing the leases of queued tasks failed");
      return;
    }
    due.forEach((entry, i) => {
      if (results[i] === "ok") entry.leaseRequestedAtMs = requestedAt;
      else drop(entry.task.id, results[i] === "cancelled");
    });
  };

  /** Takes a task out of the local queue; a cancelled one gets its run closed (its slot freed). */
  const drop = (taskId: string, cancelled: boolean): boolean => {
    const index = queue.findIndex((q) => q.task.id === taskId);
    if (index < 0) return false;
    const [entry] = queue.splice(index, 1);
    if (cancelled && entry) {
      const closed = app.taskQueue
        .finish(
          leaseOf(entry.task, workerId),
          { status: "cancelled", error: "cancelled before it started" },
          {},
        )
        .then(
          () => undefined,
          (error) =>
            app.logger.warn({ err: error, task_id: taskId }, "closing a cancelled queued task's run"),
        )
        .finally(() => inFlight.delete(closed));
      inFlight.add(closed);
    }
    return true;
  };

  return {
    name: "worker-pool",
    get active() {
      return executing + finishing + queue.length;
    },
    get queued() {
      return queue.length;
    },
    workerId,
    async start() {
      await presence.start();
      listener
        .on(TASK_QUEUED_CHANNEL, (payload) => {
          if (!onlyPausedTypes(payload, pausedTypes)) wake();
        })
        .on(TASK_CONTROL_CHANNEL, (taskId) => {
          if (running.abort(taskId, "cancelled"))
            app.logger.info({ task_id: taskId }, "cancel: attempt aborted");
          // Any control notice may be a cancel; the renewal tells which, and closes its run.
          else if (queue.some((q) => q.task.id === taskId)) void renewQueuedNow(taskId);
        })
        .onReconnect(wake);
      await listener.start();
      poll = setInterval(wake, worker.poll_interval_ms);
      renewal = setInterval(() => void renewQueued(), (worker.heartbeat_seconds * 1000) / 2);
      wake();
    },
    /**
     * Stops claiming, lets running attempts (and the tasks already claimed into the local
     * queue) finish for a grace period, then aborts the rest (reason "shutdown": their shell
     * process groups are killed and each task is handed back to the queue with its run row
     * closed as 'lost'), hands back the queued ones likewise, and waits for those writes.
     */
    async stop() {
      stopping = true;
      clearInterval(poll);
      clearInterval(renewal);
      await listener.stop();
      // A claim in progress completes and its tasks join the queue.
      await Promise.allSettled([...claims]);
      const graceMs = options.stopGraceMs ?? worker.shutdown_grace_seconds * 1000;
      if (inFlight.size + queue.length > 0)
        app.logger.info(
          { running: inFlight.size, queued: queue.length, grace_seconds: graceMs / 1000 },
          "shutdown: letting running attempts finish",
        );
      const deadline = Date.now() + graceMs;
      while ((inFlight.size > 0 || queue.length > 0) && Date.now() < deadline) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.race([...inFlight]),
          new Promise((resolve) => {
            timer = setTimeout(resolve, Math.max(0, Math.min(50, deadline - Date.now())));
          }),
        ]);
        clearTimeout(timer);
      }
      if (inFlight.size > 0 || queue.length > 0) {
        running.abortAll("shutdown");
        const handedBack = queue.splice(0).map((entry) =>
          app.taskQueue
            .finish(
              leaseOf(entry.task, workerId),
              { status: "released", error: "worker shut down before the attempt started" },
              {},
            )
            .catch((error) => app.logger.warn({ err: error, task_id: entry.task.id }, "hand back"))
            .then(() => undefined),
        );
        await Promise.allSettled([...inFlight, ...handedBack]);
      }
      await presence.stop();
    },
  };

  async function renewQueuedNow(taskId: string): Promise<void> {
    const entry = queue.find((q) => q.task.id === taskId);
    if (!entry) return;
    try {
      const [result] = await app.taskQueue.renewLeases([leaseOf(entry.task, workerId)]);
      if (result !== "ok") drop(taskId, result === "cancelled");
    } catch (error) {
      app.logger.warn({ err: error, task_id: taskId }, "checking a queued task after a control notice");
    }
  }
}

/**
 * True when a wake-up names only task types that were paused when a claim last came up short
 * (the create's payload: a JSON array of [namespace, name]): claiming again would only scan
 * their backlog. Any other payload (a task id, nothing) wakes the pool. A type resumed since
 * is not missed: the resume sends a wake-up of its own, and the poll claims regardless.
 */
function onlyPausedTypes(payload: string, paused: ReadonlySet<string>): boolean {
  if (paused.size === 0 || !payload.startsWith("[")) return false;
  try {
    const types = JSON.parse(payload) as unknown;
    return (
      Array.isArray(types) &&
      types.length > 0 &&
      types.every(
        (t) => Array.isArray(t) && t.length === 2 && paused.has(typeKey(String(t[0]), String(t[1]))),
      )
    );
  } catch {
    return false;
  }
}

/**
 * Tasks finished per second, smoothed: a moving estimate over 100 ms windows, so the local queue
 * grows with short tasks within a few windows and shrinks to nothing when tasks are slow or none
 * come.
 */
class FinishRate {
  private count = 0;
  private windowStart = Date.now();
  private estimate = 0;

  ended(): void {
    this.count++;
  }

  perSecond(): number {
    const now = Date.now();
    const elapsed = now - this.windowStart;
    if (elapsed >= 100) {
      const sample = (this.count * 1000) / elapsed;
      this.estimate = this.estimate === 0 ? sample : (this.estimate + sample) / 2;
      this.count = 0;
      this.windowStart = now;
    }
    return this.estimate;
  }
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
      const dead = await app.taskQueue.reapDeadWorkers();
      if (dead.workers.length > 0)
        app.logger.warn(dead, "took back the tasks of workers that stopped beating");
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
