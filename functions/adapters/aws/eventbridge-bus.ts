import {
  EventBridgeClient,
  PutEventsCommand,
  type PutEventsCommandOutput,
  type PutEventsRequestEntry,
} from "@aws-sdk/client-eventbridge";
import type { TmeEvent } from "../../core/events/event.js";
import type { OutboxMessage, OutboxSink, PublishFailure } from "../../core/outbox/outbox.js";

/** PutEvents takes at most 10 entries per call. */
export const PUT_EVENTS_BATCH = 10;
const BUS_TYPE = /^(task|schedule|alert)\./;

/**
 * PutEvents refuses an entry of 256 KB or more, and a call whose entries add up to that (sized
 * as EventBridge sizes them: entrySize below).
 */
export const MAX_PUT_EVENTS_BYTES = 256 * 1024;

/** A value of a too-large event's data that its reference keeps whole: ids, statuses, counters. */
const KEPT_VALUE_BYTES = 1024;
/** What the kept values of a reference may add up to, far below the limit. */
const REFERENCE_BUDGET_BYTES = 16 * 1024;

/**
 * What a too-large event carries instead of its whole data: it is sent with the small values
 * only (an object too large keeps its small fields: `data.task` keeps the task's id, name and
 * status and loses its params or output), and says so. The full event stays in the database:
 * TME's webhook dispatcher reads it back (readOutboxEvent), and a rule of the user's own fetches
 * what it needs through the API (GET /tasks/{data.task.id}).
 */
export interface TruncatedEvent {
  reason: "event_too_large";
  /** The entry's size had it been sent whole (EventBridge's count). */
  original_bytes: number;
  /** Dotted paths of the values of `data` left out ("task.output"). */
  omitted_fields: string[];
}

/** EventBridge's size of an entry ("Calculating PutEvents event entry size" in its guide). */
export function entrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time ? 14 : 0;
  size += Buffer.byteLength(entry.Source ?? "") + Buffer.byteLength(entry.DetailType ?? "");
  if (entry.Detail) size += Buffer.byteLength(entry.Detail);
  for (const resource of entry.Resources ?? []) size += Buffer.byteLength(resource);
  return size;
}

/** The event with only the small values of its data, and the paths of what was left out. */
export function eventReference(
  event: TmeEvent,
  originalBytes: number,
): TmeEvent & { truncated: TruncatedEvent } {
  const omitted: string[] = [];
  let budget = REFERENCE_BUDGET_BYTES;
  const keep = (value: Record<string, unknown>, path: string, depth: number): Record<string, unknown> => {
    const kept: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      const bytes = Buffer.byteLength(JSON.stringify(inner) ?? "");
      if (bytes <= KEPT_VALUE_BYTES && bytes <= budget) {
        kept[key] = inner;
        budget -= bytes;
      } else if (depth < 2 && inner !== null && typeof inner === "object" && !Array.isArray(inner)) {
        kept[key] = keep(inner as Record<string, unknown>, `${path}${key}.`, depth + 1);
      } else {
        omitted.push(`${path}${key}`);
      }
    }
    return kept;
  };
  return {
    ...event,
    data: keep(event.data ?? {}, "", 0),
    truncated: { reason: "event_too_large", original_bytes: originalBytes, omitted_fields: omitted },
  };
}

export interface EventBridgeBusOptions {
  client?: { send(command: PutEventsCommand): Promise<PutEventsCommandOutput> };
  /** env EVENT_BUS_NAME */
  eventBusName?: string;
  /** Extra tries for the entries EventBridge rejected within a call (throttling, internal errors). */
  retries?: number;
  retryDelayMs?: number;
  /** Told how many events of a publish went as a reference (too large to send whole). */
  onSentAsReference?: (count: number) => void;
}

/**
 * The cloud event bus: outbox events go to TME's EventBridge bus (source "tme", detail-type =
 * the event type, detail = the TmeEvent), where the webhook rule and any rule of the user's own
 * pick them up. Sent in batches of up to 10 entries under the size limit; when a call partly
 * fails (FailedEntryCount), only the failed entries are sent again, and those still failing go
 * back to the relay, which retries their outbox rows later. An event too large for PutEvents is
 * sent as a reference (eventReference: `truncated` says so), never refused over and over.
 */
export function eventBridgeBusSink(options: EventBridgeBusOptions = {}): OutboxSink {
  const client = options.client ?? new EventBridgeClient({});
  const eventBusName = options.eventBusName ?? process.env.EVENT_BUS_NAME;
  const retries = options.retries ?? 2;
  const retryDelayMs = options.retryDelayMs ?? 200;
  if (!eventBusName)
    throw new Error("environment variable EVENT_BUS_NAME is required for the EventBridge bus");

  const entryOf = (message: OutboxMessage): { entry: PutEventsRequestEntry; reference: boolean } => {
    const event = message.payload as TmeEvent;
    const entry: PutEventsRequestEntry = {
      EventBusName: eventBusName,
      Source: "tme",
      DetailType: message.type,
      Detail: JSON.stringify(event),
      Time: new Date(event.occurred_at),
    };
    const size = entrySize(entry);
    if (size < MAX_PUT_EVENTS_BYTES) return { entry, reference: false };
    return { entry: { ...entry, Detail: JSON.stringify(eventReference(event, size)) }, reference: true };
  };

  async function putBatch(
    batch: OutboxMessage[],
    entries: Map<number, PutEventsRequestEntry>,
  ): Promise<PublishFailure[]> {
    let pending = batch;
    let errors = new Map<number, string>();
    for (let attempt = 0; attempt <= retries && pending.length > 0; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, retryDelayMs * attempt));
      let output: PutEventsCommandOutput;
      try {
        output = await client.send(new PutEventsCommand({ Entries: pending.map((m) => entries.get(m.id)!) }));
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
      const entries = new Map<number, PutEventsRequestEntry>();
      let references = 0;
      for (const message of messages) {
        const { entry, reference } = entryOf(message);
        entries.set(message.id, entry);
        if (reference) references++;
      }
      if (references > 0) options.onSentAsReference?.(references);
      const failed: PublishFailure[] = [];
      for (const batch of batchesOf(messages, (m) => entrySize(entries.get(m.id)!))) {
        failed.push(...(await putBatch(batch, entries)));
      }
      return { failed };
    },
  };
}

/** Consecutive batches of at most PUT_EVENTS_BATCH messages whose entries add up to less than the limit. */
function batchesOf(messages: OutboxMessage[], sizeOf: (m: OutboxMessage) => number): OutboxMessage[][] {
  const batches: OutboxMessage[][] = [];
  let current: OutboxMessage[] = [];
  let bytes = 0;
  for (const message of messages) {
    const size = sizeOf(message);
    if (current.length === PUT_EVENTS_BATCH || (current.length > 0 && bytes + size >= MAX_PUT_EVENTS_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(message);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
