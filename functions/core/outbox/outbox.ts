/** One pending outbox row: an event for the bus, or a signal for the queue or the scheduler. */
export interface OutboxMessage {
  id: number;
  eventId: string;
  namespace: string;
  /** An EventType ("task.failed"), or a signal type ("queue.dispatch", "scheduler.sync"). */
  type: string;
  payload: unknown;
  attempts: number;
}

/** A message a sink could not publish, and why: the relay retries it with backoff. */
export interface PublishFailure {
  id: number;
  error: string;
}

/**
 * Where a kind of outbox message goes: the event bus (EventBridge | local dispatcher), the task
 * queue (SQS | nothing locally, where workers claim from Postgres), the scheduler
 * (EventBridge Scheduler | nothing locally). Each area of TME contributes its sinks.
 */
export interface OutboxSink {
  name: string;
  accepts(type: string): boolean;
  /**
   * Publishes a batch; returns the ids that failed (they are retried with backoff), so
   * one bad entry never holds back the others.
   */
  publish(messages: OutboxMessage[]): Promise<{ failed: PublishFailure[] }>;
}

/** The sink of one message type (a queue signal, a scheduler sync): most sinks take exactly one. */
export function sinkOfType(type: string, name: string, publish: OutboxSink["publish"]): OutboxSink {
  return { name, accepts: (candidate) => candidate === type, publish };
}

/** Port: the outbox table. */
export interface OutboxStore {
  /**
   * Locks up to `limit` due, unpublished rows (SKIP LOCKED, so relays in several processes
   * share the work), hands them to fn, then marks the published ones and reschedules the rest.
   */
  relayBatch(
    limit: number,
    fn: (messages: OutboxMessage[]) => Promise<{ failed: PublishFailure[] }>,
  ): Promise<{ published: number; failed: number }>;
}

/** Delay before the next try of a failed outbox row: 1 s doubling to at most 5 min. */
export function outboxRetryDelayMs(attempts: number): number {
  return Math.min(300_000, 1000 * 2 ** Math.min(attempts, 20));
}

/**
 * Relays one batch: routes each message to the first sink that accepts its type. A message
 * no sink accepts is an error of wiring, reported as a failure rather than silently dropped.
 */
export async function relayOutboxBatch(
  store: OutboxStore,
  sinks: OutboxSink[],
  limit = 100,
): Promise<{ published: number; failed: number }> {
  return store.relayBatch(limit, async (messages) => {
    const failed: PublishFailure[] = [];
    const bySink = new Map<OutboxSink, OutboxMessage[]>();
    for (const message of messages) {
      const sink = sinks.find((s) => s.accepts(message.type));
      if (!sink) {
        failed.push({ id: message.id, error: `no outbox sink accepts type ${message.type}` });
        continue;
      }
      bySink.set(sink, [...(bySink.get(sink) ?? []), message]);
    }
    for (const [sink, batch] of bySink) {
      try {
        failed.push(...(await sink.publish(batch)).failed);
      } catch (error) {
        const reason = `${sink.name}: ${(error as Error).message}`;
        failed.push(...batch.map((m) => ({ id: m.id, error: reason })));
      }
    }
    return { failed };
  });
}
