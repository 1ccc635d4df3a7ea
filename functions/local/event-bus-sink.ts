import type { AppContext } from "../context.js";
import type { TmeEvent } from "../core/events/event.js";
import type { OutboxSink } from "../core/outbox/outbox.js";
import { dispatchRecords, sqsEventOf, toBusEvent } from "../handlers/webhook-dispatcher.js";

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
