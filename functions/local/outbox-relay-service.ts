import { PostgresListener } from "../adapters/postgres/listener.js";
import { OUTBOX_CHANNEL } from "../adapters/postgres/outbox-repository.js";
import type { AppContext } from "../context.js";
import { QUEUE_DISPATCH } from "../core/events/event.js";
import { type OutboxSink, relayOutboxBatch, sinkOfType } from "../core/outbox/outbox.js";
import { notifiedLoopService } from "./notified-loop-service.js";
import type { BackgroundService } from "./runtime.js";
import { wakeableLoop } from "./wakeable-loop.js";

/**
 * Locally, workers claim straight from Postgres (woken by NOTIFY), so a queue signal has
 * nowhere further to go: relaying it means marking it done. In the cloud the same rows go to SQS.
 */
export const localQueueSink = sinkOfType(QUEUE_DISPATCH, "local-queue", async () => ({ failed: [] }));

/**
 * Relays the outbox in the local runtime: woken by NOTIFY on every write, and every
 * second regardless, so a lost notification only delays a message, never strands it.
 */
export function outboxRelayService(app: AppContext, sinks: OutboxSink[]): BackgroundService {
  const listener = new PostgresListener(app.databaseUrl, app.logger);
  let timer: NodeJS.Timeout | undefined;
  const loop = wakeableLoop(
    async (pass) => {
      for (;;) {
        const { published, failed } = await relayOutboxBatch(app.outbox, sinks);
        if (failed > 0) app.logger.warn({ failed }, "outbox messages failed; will retry");
        if (published + failed === 0 || pass.stopped) break;
      }
    },
    (error) => app.logger.error({ err: error }, "outbox relay"),
  );
  const wake = () => loop.wake();

  return notifiedLoopService("outbox-relay", listener, OUTBOX_CHANNEL, loop, wake, {
    start: () => {
      timer = setInterval(wake, 1000);
    },
    stop: () => clearInterval(timer),
  });
}
