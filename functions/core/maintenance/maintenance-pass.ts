import type { AlertServices } from "../alerts/evaluate-alerts.js";
import { evaluateAlerts } from "../alerts/evaluate-alerts.js";
import type { IdempotencyStore } from "../idempotency/idempotency-store.js";
import { type OutboxSink, type OutboxStore, relayOutboxBatch } from "../outbox/outbox.js";
import type { PluginResolver } from "../plugins/plugin.js";
import { fireDueSchedules } from "../schedules/fire-schedule.js";
import type { ScheduleStore } from "../schedules/schedule-store.js";
import type { TaskQueue } from "../tasks/task-queue.js";
import { type DeliveryServices, runDueDeliveries } from "../webhooks/deliver-due.js";

export interface MaintenanceReport {
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

/** The ports one pass works on (an AppContext has them all, but the outbox store and the sinks). */
export type MaintenanceServices = DeliveryServices &
  AlertServices & {
    taskQueue: Pick<TaskQueue, "reapExpired" | "promoteDueRetries" | "redispatchStranded">;
    schedules: ScheduleStore;
    plugins: PluginResolver;
    outbox: OutboxStore;
    idempotency: Pick<IdempotencyStore, "pruneExpired">;
  };

/** Batches the outbox relay does per pass, so one pass stays well inside the Lambda's timeout. */
const MAX_RELAY_BATCHES = 50;

/** Time a pass spends on webhook retries, inside the reaper's 55 s timeout. */
const WEBHOOK_BUDGET_MS = 25_000;

/**
 * One maintenance pass (the cloud's reaper runs it every minute): take back tasks of dead
 * workers, queue retries whose backoff is over, re-signal queued tasks whose message went
 * missing, fire schedules that are due (EventBridge Scheduler normally does), relay the outbox
 * to the sinks, make webhook retries that fell due, evaluate the alert rules, and forget
 * expired Idempotency-Key records.
 */
export async function runMaintenancePass(
  services: MaintenanceServices,
  sinks: OutboxSink[],
): Promise<MaintenanceReport> {
  const reaped = await services.taskQueue.reapExpired(500);
  const promoted = await services.taskQueue.promoteDueRetries();
  const redispatched = await services.taskQueue.redispatchStranded();
  const schedulesFired = await fireDueSchedules(services.schedules, {
    plugins: services.plugins,
    config: services.config.app,
    now: services.now,
    logger: services.logger,
  });
  const relayed = { published: 0, failed: 0 };
  for (let i = 0; i < MAX_RELAY_BATCHES; i++) {
    const batch = await relayOutboxBatch(services.outbox, sinks);
    relayed.published += batch.published;
    relayed.failed += batch.failed;
    if (batch.published + batch.failed === 0) break;
  }
  const { attempts: webhookAttempts } = await runDueDeliveries(services, { budgetMs: WEBHOOK_BUDGET_MS });
  const alerts = await evaluateAlerts(services);
  const idempotencyKeysPruned = await services.idempotency.pruneExpired();
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
  services.logger.info(report, "reaper pass");
  return report;
}
