import type { Context, EventBridgeEvent, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { lazyEntry } from "../adapters/aws/lazy-entry.js";
import type { AppContext } from "../context.js";
import type { TmeEvent } from "../core/events/event.js";
import { runDueDeliveries } from "../core/webhooks/deliver-due.js";
import type { DispatchableEvent } from "../core/webhooks/delivery-store.js";
import { fanOutDispatched } from "../core/webhooks/manage-deliveries.js";

/** What the bus carries: EventBridge's envelope around a TmeEvent. */
export type TmeBusEvent = EventBridgeEvent<string, TmeEvent>;

export const BUS_SOURCE = "tme";

/** The EventBridge shape of an event, as PutEvents delivers it to a rule's target. */
export function toBusEvent(event: TmeEvent, where: { account: string; region: string }): TmeBusEvent {
  return {
    version: "0",
    id: event.id,
    "detail-type": event.type,
    source: BUS_SOURCE,
    account: where.account,
    time: event.occurred_at,
    region: where.region,
    resources: [],
    detail: event,
  };
}

function parseRecord(record: SQSRecord): DispatchableEvent & { truncated: boolean } {
  const bus = JSON.parse(record.body) as Partial<TmeBusEvent>;
  const detail = bus.detail as (TmeEvent & { truncated?: unknown }) | undefined;
  if (
    !detail ||
    typeof detail.id !== "string" ||
    typeof detail.type !== "string" ||
    typeof detail.namespace !== "string"
  ) {
    throw new Error("record body is not an EventBridge event carrying a TME event");
  }
  return {
    id: detail.id,
    type: detail.type,
    occurred_at: detail.occurred_at,
    namespace: detail.namespace,
    data: detail.data ?? {},
    truncated: detail.truncated !== undefined,
  };
}

/**
 * Fans each record's event out to the matching subscriptions (pending attempts in `deliveries`),
 * the whole batch at once. A record that fails is reported in batchItemFailures, so SQS retries
 * that one only.
 */
export async function dispatchRecords(app: AppContext, event: SQSEvent): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
  const failed = (messageId: string, error: unknown) => {
    app.logger.error({ err: error, message_id: messageId }, "event could not be fanned out");
    batchItemFailures.push({ itemIdentifier: messageId });
  };
  const parsed: Array<{ messageId: string; event: DispatchableEvent; truncated: boolean }> = [];
  for (const record of event.Records) {
    try {
      const { truncated, ...dispatched } = parseRecord(record);
      parsed.push({ messageId: record.messageId, event: dispatched, truncated });
    } catch (error) {
      failed(record.messageId, error);
    }
  }
  let outcomes: Array<PromiseSettledResult<number>>;
  try {
    outcomes = await fanOutDispatched(app, parsed);
  } catch (error) {
    for (const { messageId } of parsed) failed(messageId, error);
    return { batchItemFailures };
  }
  for (const [i, outcome] of outcomes.entries()) {
    const { messageId } = parsed[i]!;
    if (outcome.status === "rejected") failed(messageId, outcome.reason);
    else app.logger.debug({ message_id: messageId, deliveries: outcome.value }, "event fanned out");
  }
  return { batchItemFailures };
}

/** An SQS event as the bus -> rule -> queue path delivers it, built locally from bus events. */
export function sqsEventOf(events: TmeBusEvent[], ids: string[]): SQSEvent {
  return {
    Records: events.map((bus, i) => ({
      messageId: ids[i]!,
      receiptHandle: ids[i]!,
      body: JSON.stringify(bus),
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: String(Date.now()),
        SenderId: "tme-local",
        ApproximateFirstReceiveTimestamp: String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: "",
      eventSource: "aws:sqs",
      eventSourceARN: "arn:aws:sqs:local:000000000000:tme-webhook-dispatch",
      awsRegion: "local",
    })),
  };
}

/**
 * Lambda entry: SQS records whose bodies are EventBridge events (bus -> rule -> SQS). After the
 * fan-out it makes the attempts that are due now, within the invocation's remaining time; later
 * retries are made by the reaper's runs (runDueDeliveries), so in the cloud a retry falls due
 * with the granularity of the reaper's schedule.
 */
export const handler = lazyEntry(async () => {
  const [{ coldStart }, { lambdaHandler }] = await Promise.all([
    import("../cloud/runtime.js"),
    import("../adapters/aws/lambda-telemetry.js"),
  ]);
  const setup = coldStart("webhook-dispatcher", (app) => app);
  return lambdaHandler(
    "webhook-dispatcher",
    async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
      const app = await setup();
      const response = await dispatchRecords(app, event);
      const remaining = context.getRemainingTimeInMillis?.() ?? 60_000;
      await runDueDeliveries(app, { budgetMs: Math.max(0, remaining - 5_000) });
      return response;
    },
  );
});
