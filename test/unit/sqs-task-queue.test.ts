import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { sqsTaskQueueSink, taskQueueUrlsFromEnv } from "../../functions/adapters/aws/sqs-task-queue.js";
import { priorityClassOf } from "../../functions/config/cloud-environment.js";
import type { OutboxMessage } from "../../functions/core/outbox/outbox.js";

const sqs = mockClient(SQSClient);
const urls = { high: "https://sqs/high", normal: "https://sqs/normal", low: "https://sqs/low" };
const now = new Date("2026-01-01T00:00:00Z");

function dispatch(id: number, priority: number, runAt = now, taskId = `tsk_${id}`): OutboxMessage {
  return {
    id,
    eventId: `q_${id}`,
    namespace: "default",
    type: "queue.dispatch",
    payload: { task_id: taskId, attempt: 1, priority, run_at: runAt.toISOString() },
    attempts: 0,
  };
}

beforeEach(() => {
  sqs.reset();
});

describe("the SQS task queue sink", () => {
  const sink = () => sqsTaskQueueSink(urls, new SQSClient({ region: "eu-west-1" }), () => now);

  it("accepts only queue.dispatch", () => {
    expect(sink().accepts("queue.dispatch")).toBe(true);
    expect(sink().accepts("task.failed")).toBe(false);
  });

  it("maps priorities to classes: 7-9 high, 4-6 normal, 0-3 low", () => {
    expect([0, 3, 4, 6, 7, 9].map(priorityClassOf)).toEqual([
      "low",
      "low",
      "normal",
      "normal",
      "high",
      "high",
    ]);
  });

  it("sends each message to its class's queue in batches of at most 10, delaying future ones", async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const messages = [
      ...Array.from({ length: 23 }, (_, i) => dispatch(i + 1, 5)),
      dispatch(100, 9, new Date(now.getTime() + 30_500)),
      dispatch(101, 1),
    ];
    const result = await sink().publish(messages);
    expect(result).toEqual({ failed: [] });
    const calls = sqs.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input);
    const normal = calls.filter((c) => c.QueueUrl === urls.normal);
    expect(normal.map((c) => c.Entries!.length)).toEqual([10, 10, 3]);
    const high = calls.find((c) => c.QueueUrl === urls.high)!;
    expect(high.Entries).toEqual([
      {
        Id: "100",
        MessageBody: JSON.stringify({
          task_id: "tsk_100",
          attempt: 1,
          priority: 9,
          run_at: new Date(now.getTime() + 30_500).toISOString(),
        }),
        MessageGroupId: "default",
        DelaySeconds: 31,
      },
    ]);
    expect(calls.find((c) => c.QueueUrl === urls.low)!.Entries!.map((e) => e.Id)).toEqual(["101"]);
    expect(normal[0]!.Entries![0]!.DelaySeconds).toBeUndefined();
  });

  it("groups each message by its task's namespace, so SQS fair queues share the workers between namespaces", async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    await sink().publish([dispatch(1, 5), { ...dispatch(2, 5), namespace: "billing" }]);
    const [call] = sqs.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input);
    expect(call!.Entries!.map((e) => [e.Id, e.MessageGroupId])).toEqual([
      ["1", "default"],
      ["2", "billing"],
    ]);
  });

  it("returns partial failures and whole-call failures by outbox id; keeps far-future ones back", async () => {
    sqs
      .on(SendMessageBatchCommand, { QueueUrl: urls.normal })
      .resolves({
        Successful: [{ Id: "1", MessageId: "a", MD5OfMessageBody: "" }],
        Failed: [{ Id: "2", Code: "InternalError", SenderFault: false, Message: "boom" }],
      })
      .on(SendMessageBatchCommand, { QueueUrl: urls.high })
      .rejects(new Error("throttled"));
    const result = await sink().publish([
      dispatch(1, 5),
      dispatch(2, 5),
      dispatch(3, 8),
      dispatch(4, 5, new Date(now.getTime() + 3_600_000)),
    ]);
    expect(result.failed.map((f) => f.id).sort()).toEqual([2, 3, 4]);
    expect(result.failed.find((f) => f.id === 2)!.error).toContain("InternalError");
    expect(result.failed.find((f) => f.id === 3)!.error).toContain("throttled");
    expect(result.failed.find((f) => f.id === 4)!.error).toContain("not due");
  });

  it("reads its queue URLs from the environment and names a missing one", () => {
    expect(
      taskQueueUrlsFromEnv({ TASK_QUEUE_URL_HIGH: "h", TASK_QUEUE_URL_NORMAL: "n", TASK_QUEUE_URL_LOW: "l" }),
    ).toEqual({ high: "h", normal: "n", low: "l" });
    expect(() => taskQueueUrlsFromEnv({ TASK_QUEUE_URL_HIGH: "h" })).toThrow(/TASK_QUEUE_URL_NORMAL/);
  });
});
