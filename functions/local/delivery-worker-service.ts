import { DELIVERY_CHANNEL } from "../adapters/postgres/delivery-repository.js";
import { PostgresListener } from "../adapters/postgres/listener.js";
import type { AppContext } from "../context.js";
import { DeliveryPool, deliveryWorkerId } from "../core/webhooks/deliver-due.js";
import type { WebhookSender } from "../core/webhooks/webhook-sender.js";
import { notifiedLoopService } from "./notified-loop-service.js";
import type { BackgroundService } from "./runtime.js";

/**
 * Makes webhook attempts in the local runtime: woken by NOTIFY when attempts are queued, by a
 * timer at the next retry's due time, and every second regardless; on stop it lets the attempts
 * in flight finish (each within its deadline). Several processes share the work through claims.
 */
export function deliveryWorkerService(app: AppContext, send?: WebhookSender): BackgroundService {
  const listener = new PostgresListener(app.databaseUrl, app.logger);
  let timer: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  let stopped = false;

  const scheduleNextDue = async () => {
    const due = await app.deliveries.nextDueAt();
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
  const pool = new DeliveryPool(app, deliveryWorkerId(), send, wake);

  // Stopping drains the pool: the attempts in flight finish, no new one is claimed.
  const loop = {
    stop: () => {
      stopped = true;
      return pool.drain();
    },
  };
  return notifiedLoopService("webhook-deliveries", listener, DELIVERY_CHANNEL, loop, wake, {
    start: () => {
      poll = setInterval(wake, 1000);
    },
    stop: () => {
      clearInterval(poll);
      clearTimeout(timer);
    },
  });
}
