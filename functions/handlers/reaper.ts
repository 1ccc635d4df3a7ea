import { LambdaObserver } from "../adapters/aws/lambda-observer.js";
import { lambdaHandler, lambdaTelemetry } from "../adapters/aws/lambda-telemetry.js";
import { pruneExpiredIdempotencyKeys } from "../adapters/postgres/idempotency-repository.js";
import { readGaugeSnapshot } from "../adapters/postgres/metrics-repository.js";
import { PostgresOutboxStore } from "../adapters/postgres/outbox-repository.js";
import { cloudOutboxSinks } from "../cloud/outbox-sinks.js";
import { coldStart } from "../cloud/runtime.js";
import type { AppContext } from "../context.js";
import { evaluateAlerts } from "../core/alerts/evaluate-alerts.js";
import { type OutboxSink, relayOutboxBatch } from "../core/outbox/outbox.js";
import { fireDueSchedules } from "../core/schedules/fire-schedule.js";
import { runDueDeliveries } from "../core/webhooks/deliver-due.js";

export interface ReaperReport {
  reaped: { requeued: number; failed: number; orphanRuns: number };
  promoted: number;
  redispatched: number;
  relayed: { published: number; failed: number };
  /** Schedules fired here: a safety net for a lost Scheduler invocation. */
  schedulesFired: number;
  webhookAttempts: number;
  alerts: { raised: number; resolved: number };
  /** Idempotency-Key records past their 24 hours, deleted. */
  idempotencyKeysPruned: number;
}

/** Batches the outbox relay does per run, so one run stays well inside the Lambda's timeout. */
const MAX_RELAY_BATCHES = 50;

/** Time a pass spends on webhook retries, inside the reaper's 55 s timeout. */
const WEBHOOK_BUDGET_MS = 25_000;

/**
 * One maintenance pass (the cloud runs it every minute): take back tasks of dead workers,
 * queue retries whose backoff is over, re-signal queued tasks whose message went missing,
 * fire schedules that are due (EventBridge Scheduler normally does), relay the outbox to the
 * cloud sinks, make webhook retries that fell due, and evaluate the alert rules.
 */
export function createReaper(app: AppContext, sinks: OutboxSink[]): () => Promise<ReaperReport> {
  const outbox = new PostgresOutboxStore(app.db);
  return async () => {
    const reaped = await app.taskQueue.reapExpired(500);
    const promoted = await app.taskQueue.promoteDueRetries();
    const redispatched = await app.taskQueue.redispatchStranded();
    const schedulesFired = await fireDueSchedules(app.schedules, {
      plugins: app.plugins,
      config: app.config.app,
      now: app.now,
      logger: app.logger,
    });
    const relayed = { published: 0, failed: 0 };
    for (let i = 0; i < MAX_RELAY_BATCHES; i++) {
      const batch = await relayOutboxBatch(outbox, sinks);
      relayed.published += batch.published;
      relayed.failed += batch.failed;
      if (batch.published + batch.failed === 0) break;
    }
    const { attempts: webhookAttempts } = await runDueDeliveries(app, { budgetMs: WEBHOOK_BUDGET_MS });
    const alerts = await evaluateAlerts(app);
    const idempotencyKeysPruned = await pruneExpiredIdempotencyKeys(app.db);
    const report = {
      reaped,
      promoted,
      redispatched,
      relayed,
      schedulesFired,
      webhookAttempts,
      alerts,
      idempotencyKeysPruned,
    };
    app.logger.info(report, "reaper pass");
    return report;
  };
}

const setup = coldStart("reaper", (app) => ({ app, pass: createReaper(app, cloudOutboxSinks(app)) }));
const observer = new LambdaObserver(lambdaTelemetry("reaper"));

/**
 * Lambda entry: an EventBridge schedule, every minute. Each pass that ends publishes the
 * heartbeat (ReaperRuns: an alarm fires when it stops) and the outbox backlog and its age.
 */
export const handler = lambdaHandler("reaper", async (): Promise<ReaperReport> => {
  const { app, pass } = await setup();
  const report = await pass();
  observer.reaperPass(report, await readGaugeSnapshot(app.db));
  return report;
});
