import {
  EventBridgeClient,
  PutEventsCommand,
  type PutEventsCommandOutput,
  type PutEventsRequestEntry,
} from "@aws-sdk/client-eventbridge";
import type { TmeEvent } from "../../core/events/event.js";
import type { OutboxMessage, OutboxSink } from "../../core/outbox/outbox.js";

/** PutEvents takes at most 10 entries per call. */
export const PUT_EVENTS_BATCH = 10;
const BUS_TYPE = /^(task|schedule|alert)\./;

export interface EventBridgeBusOptions {
  client?: { send(command: PutEventsCommand): Promise<PutEventsCommandOutput> };
  /** env EVENT_BUS_NAME */
  eventBusName?: string;
  /** Extra tries for the entries EventBridge rejected within a call (throttling, internal errors). */
  retries?: number;
  retryDelayMs?: number;
}

/**
 * The cloud event bus: outbox events go to TME's EventBridge bus (source "tme", detail-type =
 * the event type, detail = the TmeEvent), where the webhook rule and any rule of the user's own
 * pick them up. Sent in batches of 10; when a call partly fails (FailedEntryCount), only the
 * failed entries are sent again, and those still failing go back to the relay, which retries
 * their outbox rows later.
 */
export function eventBridgeBusSink(options: EventBridgeBusOptions = {}): OutboxSink {
  const client = options.client ?? new EventBridgeClient({});
  const eventBusName = options.eventBusName ?? process.env.EVENT_BUS_NAME;
  const retries = options.retries ?? 2;
  const retryDelayMs = options.retryDelayMs ?? 200;
  if (!eventBusName)
    throw new Error("environment variable EVENT_BUS_NAME is required for the EventBridge bus");

  const entryOf = (message: OutboxMessage): PutEventsRequestEntry => {
    const event = message.payload as TmeEvent;
    return {
      EventBusName: eventBusName,
      Source: "tme",
      DetailType: message.type,
      Detail: JSON.stringify(event),
      Time: new Date(event.occurred_at),
    };
  };

  async function putBatch(batch: OutboxMessage[]): Promise<Array<{ id: number; error: string }>> {
    let pending = batch;
    let errors = new Map<number, string>();
    for (let attempt = 0; attempt <= retries && pending.length > 0; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, retryDelayMs * attempt));
      let output: PutEventsCommandOutput;
      try {
        output = await client.send(new PutEventsCommand({ Entries: pending.map(entryOf) }));
      } catch (error) {
        // The whole call failed (network, credentials): every entry of it is retried.
        errors = new Map(pending.map((m) => [m.id, `PutEvents failed: ${(error as Error).message}`]));
        continue;
      }
      if (!output.FailedEntryCount) return [];
      // Entries[i] answers pending[i]; an entry with an ErrorCode was not put.
      const failed: OutboxMessage[] = [];
      errors = new Map();
      pending.forEach((message, i) => {
        const entry = output.Entries?.[i];
        if (entry?.ErrorCode || !entry?.EventId) {
          failed.push(message);
          errors.set(
            message.id,
            `${entry?.ErrorCode ?? "NoEventId"}: ${entry?.ErrorMessage ?? "entry not accepted"}`,
          );
        }
      });
      pending = failed;
    }
    return pending.map((m) => ({ id: m.id, error: errors.get(m.id) ?? "not accepted by EventBridge" }));
  }

  return {
    name: "eventbridge-bus",
    accepts: (type) => BUS_TYPE.test(type),
    async publish(messages) {
      const failed: Array<{ id: number; error: string }> = [];
      for (let i = 0; i < messages.length; i += PUT_EVENTS_BATCH) {
        failed.push(...(await putBatch(messages.slice(i, i + PUT_EVENTS_BATCH))));
      }
      return { failed };
    },
  };
}
