import { SendMessageBatchCommand, type SendMessageBatchRequestEntry, SQSClient } from "@aws-sdk/client-sqs";
import { type PriorityClass, priorityClassOf } from "../../config/cloud-environment.js";
import { QUEUE_DISPATCH, type QueueDispatch } from "../../core/events/event.js";
import { type OutboxSink, type PublishFailure, sinkOfType } from "../../core/outbox/outbox.js";

/** One SQS queue per priority class (the ranges live in the cloud environment contract). */
export type TaskQueueUrls = Record<PriorityClass, string>;

/** The queue URLs from the environment the stack sets: TASK_QUEUE_URL_HIGH / _NORMAL / _LOW. */
export function taskQueueUrlsFromEnv(env: Record<string, string | undefined> = process.env): TaskQueueUrls {
  const read = (suffix: string) => {
    const value = env[`TASK_QUEUE_URL_${suffix}`];
    if (!value) throw new Error(`environment variable TASK_QUEUE_URL_${suffix} is required in the cloud`);
    return value;
  };
  return { high: read("HIGH"), normal: read("NORMAL"), low: read("LOW") };
}

/** SQS's limits: 10 entries per batch, at most 15 minutes of delay. */
const BATCH_SIZE = 10;
export const MAX_DELAY_SECONDS = 900;

/**
 * The cloud task queue sink: relays "queue.dispatch" outbox rows to the SQS queue of the
 * task's priority class. A dispatch due later is sent with DelaySeconds (up to 15 min);
 * the outbox holds a row until its run_at (next_attempt_at), so a row due further out than
 * that arrives here only through clock skew and is handed back as failed, to be retried.
 *
 * Each message's group is its task's namespace: on a standard queue that makes SQS a fair queue
 * (fair queues, 2025), which keeps one namespace's backlog from raising every other namespace's
 * dwell time, as the local claims take turns between namespaces (queue-sql.ts fairLine). On a
 * standard queue a group orders nothing and limits nothing; it only tells SQS whose message it is.
 */
export function sqsTaskQueueSink(
  urls: TaskQueueUrls,
  client: SQSClient = new SQSClient({}),
  now: () => Date = () => new Date(),
): OutboxSink {
  return sinkOfType(QUEUE_DISPATCH, "sqs-task-queue", async (messages) => {
    const failed: PublishFailure[] = [];
    const byQueue = new Map<string, Array<{ id: number; entry: SendMessageBatchRequestEntry }>>();
    for (const message of messages) {
      const dispatch = message.payload as QueueDispatch;
      if (typeof dispatch?.task_id !== "string") {
        failed.push({ id: message.id, error: "queue.dispatch payload has no task_id" });
        continue;
      }
      const dueInMs = new Date(dispatch.run_at).getTime() - now().getTime();
      const delay = Number.isFinite(dueInMs) ? Math.max(0, Math.ceil(dueInMs / 1000)) : 0;
      if (delay > MAX_DELAY_SECONDS) {
        failed.push({
          id: message.id,
          error: `not due for ${delay} s; SQS delays at most ${MAX_DELAY_SECONDS} s`,
        });
        continue;
      }
      const url = urls[priorityClassOf(dispatch.priority)];
      const entry: SendMessageBatchRequestEntry = {
        Id: String(message.id),
        MessageBody: JSON.stringify(dispatch),
        MessageGroupId: message.namespace,
        ...(delay > 0 ? { DelaySeconds: delay } : {}),
      };
      byQueue.set(url, [...(byQueue.get(url) ?? []), { id: message.id, entry }]);
    }
    for (const [url, entries] of byQueue) {
      for (let i = 0; i < entries.length; i += BATCH_SIZE) {
        const batch = entries.slice(i, i + BATCH_SIZE);
        try {
          const output = await client.send(
            new SendMessageBatchCommand({ QueueUrl: url, Entries: batch.map((b) => b.entry) }),
          );
          for (const failure of output.Failed ?? []) {
            failed.push({
              id: Number(failure.Id),
              error: `SQS ${failure.Code ?? "error"}: ${failure.Message ?? "send failed"}`,
            });
          }
        } catch (error) {
          // The whole call failed (throttled, network): every entry of this batch is retried.
          failed.push(...batch.map((b) => ({ id: b.id, error: `SQS: ${(error as Error).message}` })));
        }
      }
    }
    return { failed };
  });
}
