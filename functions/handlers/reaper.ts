import { cloudContext } from "../adapters/aws/cloud-context.js";
import { sqsTaskQueueSink, taskQueueUrlsFromEnv } from "../adapters/aws/sqs-task-queue.js";
import { PostgresOutboxStore } from "../adapters/postgres/outbox-repository.js";
import type { AppContext } from "../context.js";
import { type OutboxSink, relayOutboxBatch } from "../core/outbox/outbox.js";

export interface ReaperReport {
  reaped: { requeued: number; failed: number; orphanRuns: number };
  promoted: number;
  redispatched: number;
  relayed: { published: number; failed: number };
}

/** Batches the outbox relay does per run, so one run stays well inside the Lambda's timeout. */
const MAX_RELAY_BATCHES = 50;

/**
 * One maintenance pass (the cloud runs it every minute): take back tasks of dead workers,
 * queue retries whose backoff is over, re-signal queued tasks whose message went missing,
 * then relay the outbox to the cloud sinks.
 */
export function createReaper(app: AppContext, sinks: OutboxSink[]): () => Promise<ReaperReport> {
  const outbox = new PostgresOutboxStore(app.db);
  return async () => {
    const reaped = await app.taskQueue.reapExpired(500);
    const promoted = await app.taskQueue.promoteDueRetries();
    const redispatched = await app.taskQueue.redispatchStranded();
    const relayed = { published: 0, failed: 0 };
    for (let i = 0; i < MAX_RELAY_BATCHES; i++) {
      const batch = await relayOutboxBatch(outbox, sinks);
      relayed.published += batch.published;
      relayed.failed += batch.failed;
      if (batch.published + batch.failed === 0) break;
    }
    const report = { reaped, promoted, redispatched, relayed };
    app.logger.info(report, "reaper pass");
    return report;
  };
}

/**
 * The outbox sinks of the cloud runtime. Each area adds its sink here (the event bus sink for
 * task.* / schedule.* / alert.*, the scheduler sink for scheduler.sync); a type no sink accepts
 * stays in the outbox and is retried, never dropped.
 */
export function cloudOutboxSinks(env: Record<string, string | undefined> = process.env): OutboxSink[] {
  return [sqsTaskQueueSink(taskQueueUrlsFromEnv(env))];
}

let cold: Promise<() => Promise<ReaperReport>> | undefined;

/** Lambda entry: an EventBridge schedule, every minute. */
export const handler = async (): Promise<ReaperReport> => {
  cold ??= cloudContext().then((app) => createReaper(app, cloudOutboxSinks()));
  return (await cold)();
};
