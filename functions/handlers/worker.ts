import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { lazyEntry } from "../adapters/aws/lazy-entry.js";
import { environmentSecrets, type SecretReader } from "../adapters/secrets/secret-readers.js";
import type { AppContext } from "../context.js";
import type { QueueDispatch } from "../core/events/event.js";
import type { AttemptLease } from "../core/plugins/plugin.js";
import {
  type AttemptDeps,
  type AttemptResult,
  RunningAttempts,
  runAttempt,
} from "../core/tasks/run-attempt.js";
import type { Task } from "../core/tasks/task.js";
import { withLazyChildren } from "../logging/logger.js";

/**
 * The worker: takes SQS-shaped events whose records carry a QueueDispatch body, claims each
 * task for that attempt (a duplicate or stale message is a no-op), runs it and records how it
 * ended. Records that could not be processed (the database was unreachable...) come back as
 * batchItemFailures so SQS redelivers just those; a task that fails is a processed record.
 *
 * `preclaimed` is the local pool's door: the pool claims with SKIP LOCKED in priority order and
 * hands the claimed task along with its record, so the claim is not attempted twice and
 * everything after it (the plugin, deadline, heartbeat, progress, fenced completion) is this
 * same code in both runtimes.
 */
export type WorkerHandler = (
  event: SQSEvent,
  preclaimed?: ReadonlyMap<string, PreclaimedAttempt>,
) => Promise<SQSBatchResponse & { results: Record<string, AttemptResult | "skipped"> }>;

/** A task the local pool claimed, and when it sent the claim (the lease counts from then). */
export interface PreclaimedAttempt {
  task: Task;
  /** Local-clock instant the claim (or the latest renewal of its lease) was requested. */
  leaseRequestedAtMs: number;
  /** The pool's slot is free once the work is over, before its end is written. */
  onWorkEnded?: () => void;
}

export interface WorkerOptions {
  /** Names this process in leases and task_runs.worker_id. */
  workerId?: string;
  /** Shared with whoever aborts attempts on cancel (the local pool's LISTEN). */
  running?: RunningAttempts;
  secret?: SecretReader;
  random?: () => number;
  /** The local process's presence in `workers` (worker-presence.ts); none in the cloud. */
  workerLease?: AttemptLease;
}

export function defaultWorkerId(kind: string): string {
  return `${kind}:${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

export function parseDispatch(body: string): QueueDispatch | undefined {
  try {
    const value = JSON.parse(body) as Partial<QueueDispatch>;
    if (typeof value.task_id !== "string" || !Number.isInteger(value.attempt) || (value.attempt ?? 0) < 1) {
      return undefined;
    }
    return value as QueueDispatch;
  } catch {
    return undefined;
  }
}

export function createWorkerHandler(app: AppContext, options: WorkerOptions = {}): WorkerHandler {
  const workerId = options.workerId ?? defaultWorkerId("worker");
  const deps: AttemptDeps = {
    queue: app.taskQueue,
    plugins: app.plugins,
    config: app.config.app,
    // Each attempt's child logger is made only when the attempt writes a line (most write none).
    logger: withLazyChildren(app.logger.child({ worker_id: workerId })),
    services: app.pluginServices,
    secret: options.secret ?? environmentSecrets(),
    running: options.running ?? new RunningAttempts(),
    random: options.random ?? Math.random,
    workerLease: options.workerLease,
  };

  const processRecord = async (record: SQSRecord, preclaimed: PreclaimedAttempt | undefined) => {
    let task = preclaimed?.task;
    let leaseRequestedAtMs = preclaimed?.leaseRequestedAtMs ?? Date.now();
    if (!task) {
      const dispatch = parseDispatch(record.body);
      if (!dispatch) {
        // Redelivering a malformed message would fail the same way forever; the cloud
        // sweeper re-signals any task that really waits.
        app.logger.error({ message_id: record.messageId }, "worker: malformed queue message dropped");
        return "skipped" as const;
      }
      leaseRequestedAtMs = Date.now();
      const claim = await app.taskQueue.claim(dispatch.task_id, dispatch.attempt, workerId);
      if ("skipped" in claim) {
        app.logger.debug(
          { task_id: dispatch.task_id, attempt: dispatch.attempt, reason: claim.skipped },
          "not claimed",
        );
        return "skipped" as const;
      }
      task = claim.claimed;
    }
    const claimed = task;
    return app.observer.attempt(claimed, () =>
      runAttempt(deps, claimed, workerId, { leaseRequestedAtMs, onWorkEnded: preclaimed?.onWorkEnded }),
    );
  };

  return async (event, preclaimed) => {
    const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
    const results: Record<string, AttemptResult | "skipped"> = {};
    // One record at a time: a worker invocation is one concurrency slot (MAX_CONCURRENT_TASKS is
    // the Lambda's reserved concurrency), so a batch must not run its tasks side by side.
    for (const record of event.Records) {
      try {
        results[record.messageId] = await processRecord(record, preclaimed?.get(record.messageId));
      } catch (error) {
        app.logger.error({ err: error, message_id: record.messageId }, "worker: record not processed");
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures, results };
  };
}

/** An SQS record as the local pool builds it for a claimed task. */
export function sqsRecordFor(task: Task, messageId: string): SQSRecord {
  const body: QueueDispatch = {
    task_id: task.id,
    attempt: task.attempt,
    priority: task.priority,
    run_at: task.run_at.toISOString(),
  };
  const now = String(Date.now());
  return {
    messageId,
    receiptHandle: messageId,
    body: JSON.stringify(body),
    attributes: {
      ApproximateReceiveCount: "1",
      SentTimestamp: now,
      SenderId: "tme-local",
      ApproximateFirstReceiveTimestamp: now,
    },
    messageAttributes: {},
    md5OfBody: "",
    eventSource: "tme:local",
    eventSourceARN: "tme:local:task-queue",
    awsRegion: "local",
  };
}

/** Lambda entry: the SQS event sources of the three priority queues. */
export const handler = lazyEntry(async () => {
  const [{ coldStart }, { relayAfterChange }, { lambdaHandler }, { secretsManagerSecrets }] =
    await Promise.all([
      import("../cloud/runtime.js"),
      import("../cloud/outbox-sinks.js"),
      import("../adapters/aws/lambda-telemetry.js"),
      import("../adapters/aws/secrets-manager-secrets.js"),
    ]);
  const setup = coldStart("worker", (app) => ({
    run: createWorkerHandler(app, {
      workerId: defaultWorkerId("lambda"),
      secret: process.env.TME_SECRETS_PREFIX
        ? secretsManagerSecrets(process.env.TME_SECRETS_PREFIX)
        : environmentSecrets(),
    }),
    // A finished task's events (and a retry's queue signal) leave at once, not at the next reaper pass.
    relay: relayAfterChange(app),
  }));
  return lambdaHandler("worker", async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const { run, relay } = await setup();
    const { batchItemFailures } = await run(event);
    await relay();
    return { batchItemFailures };
  });
});
