import { evaluateAlerts } from "../adapters/alerts/evaluate-alerts.js";
import { DELIVERY_CHANNEL, nextDueAt } from "../adapters/postgres/delivery-repository.js";
import { PostgresListener } from "../adapters/postgres/listener.js";
import { DeliveryPool, deliveryWorkerId, type Sender } from "../adapters/webhooks/delivery-runner.js";
import type { AppContext } from "../context.js";
import type { TmeEvent } from "../core/events/event.js";
import type { OutboxSink } from "../core/outbox/outbox.js";
import { dispatchRecords, sqsEventOf, toBusEvent } from "../handlers/webhook-dispatcher.js";
import type { BackgroundService } from "./runtime.js";

const BUS_TYPE = /^(task|schedule|alert)\./;

/**
 * The local event bus: hands outbox events to the webhook dispatcher in exactly the shape the
 * cloud gives it (EventBridge events inside SQS records). A record the dispatcher fails is
 * reported back to the relay, which retries that outbox row.
 */
export function localEventBusSink(app: AppContext): OutboxSink {
  return {
    name: "local-event-bus",
    accepts: (type) => BUS_TYPE.test(type),
    async publish(messages) {
      const events = messages.map((m) =>
        toBusEvent(m.payload as TmeEvent, { account: "local", region: "local" }),
      );
      const response = await dispatchRecords(
        app,
        sqsEventOf(
          events,
          messages.map((m) => String(m.id)),
        ),
      );
      return {
        failed: response.batchItemFailures.map((f) => ({
          id: Number(f.itemIdentifier),
          error: "webhook dispatcher could not fan the event out",
        })),
      };
    },
  };
}

/**
 * Makes webhook attempts in the local runtime: woken by NOTIFY when attempts are queued, by a
 * timer at the next retry's due time, and every second regardless; on stop it lets the attempts
 * in flight finish (each within its deadline). Several processes share the work through claims.
 */
export function deliveryWorkerService(app: AppContext, send?: Sender): BackgroundService {
  const listener = new PostgresListener(app.databaseUrl, app.logger);
  let timer: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  let stopped = false;
  let pool: DeliveryPool;

  const scheduleNextDue = async () => {
    const due = await nextDueAt(app.db);
    if (!due || stopped) return;
    clearTimeout(timer);
    timer = setTimeout(wake, Math.min(Math.max(due.getTime() - Date.now(), 10), 1000));
  };
  const wake = () => {
    if (stopped) return;
    pool
      .fill()
      .then(scheduleNextDue)
      .catch((error) => app.logger.error({ err: error }, "delivery worker"));
  };

  return {
    name: "webhook-deliveries",
    async start() {
      pool = new DeliveryPool(app, deliveryWorkerId(), send, wake);
      listener.on(DELIVERY_CHANNEL, wake).onReconnect(wake);
      await listener.start();
      poll = setInterval(wake, 1000);
      wake();
    },
    async stop() {
      stopped = true;
      clearInterval(poll);
      clearTimeout(timer);
      await listener.stop();
      await pool.drain();
    },
  };
}

/** Evaluates the alert rules every alerts.evaluate_every_seconds. */
export function alertEvaluatorService(app: AppContext): BackgroundService {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped || running) return;
    running = evaluateAlerts(app)
      .catch((error) => app.logger.error({ err: error }, "alert evaluation"))
      .finally(() => {
        running = undefined;
      });
  };
  return {
    name: "alert-evaluator",
    start() {
      timer = setInterval(tick, app.config.app.alerts.evaluate_every_seconds * 1000);
      tick();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
