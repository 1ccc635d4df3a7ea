import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { cloudOutboxSinks, relayAfterChange } from "../../functions/cloud/outbox-sinks.js";
import { runMaintenancePass } from "../../functions/core/maintenance/maintenance-pass.js";
import { withTestApp } from "../helpers/test-app.js";

const sqs = mockClient(SQSClient);
const eventBridge = mockClient(EventBridgeClient);
const scheduler = mockClient(SchedulerClient);

const env = {
  AWS_REGION: "eu-west-1",
  TASK_QUEUE_URL_HIGH: "https://sqs.eu-west-1.amazonaws.com/1/high",
  TASK_QUEUE_URL_NORMAL: "https://sqs.eu-west-1.amazonaws.com/1/normal",
  TASK_QUEUE_URL_LOW: "https://sqs.eu-west-1.amazonaws.com/1/low",
  EVENT_BUS_NAME: "tme-bus",
  SCHEDULE_GROUP_NAME: "tme-schedules",
  SCHEDULE_TARGET_ARN: "arn:aws:lambda:eu-west-1:1:function:schedule-target",
  SCHEDULER_ROLE_ARN: "arn:aws:iam::1:role/scheduler",
  SCHEDULE_DEAD_LETTER_ARN: "arn:aws:sqs:eu-west-1:1:schedule-dlq",
};

// The cloud runtime: queue signals go through the outbox (locally they are NOTIFY only).
const t = withTestApp({ env: { TME_RUNTIME: "cloud" } });
beforeEach(async () => {
  sqs.reset();
  eventBridge.reset();
  scheduler.reset();
  sqs.on(SendMessageBatchCommand).callsFake((input) => ({
    Successful: input.Entries.map((e: { Id: string }) => ({
      Id: e.Id,
      MessageId: `m-${e.Id}`,
      MD5OfMessageBody: "",
    })),
    Failed: [],
  }));
  eventBridge.on(PutEventsCommand).callsFake((input) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map((_: unknown, i: number) => ({ EventId: `e-${i}` })),
  }));
  scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:::schedule/x" });
  await t.app.db.query("UPDATE outbox SET published_at = now() WHERE published_at IS NULL");
});

async function pendingOutbox(): Promise<string[]> {
  const rows = await t.app.db.rows<{ type: string }>(
    "SELECT type FROM outbox WHERE published_at IS NULL ORDER BY id",
  );
  return rows.map((r) => r.type);
}

describe("the cloud outbox relay", () => {
  it("sends a new task to its SQS queue and its event to the bus right after the request", async () => {
    const created = await t.request("POST", "/task/create", { body: { name: "noop", priority: 8 } });
    expect(created.status).toBe(201);
    expect(await pendingOutbox()).toEqual(["task.created", "queue.dispatch"]);

    await relayAfterChange(t.app, env)();

    expect(await pendingOutbox()).toEqual([]);
    const sent = sqs.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.QueueUrl).toBe(env.TASK_QUEUE_URL_HIGH);
    expect(JSON.parse(sent[0]!.Entries![0]!.MessageBody!)).toMatchObject({
      task_id: created.body.id,
      attempt: 1,
    });
    const put = eventBridge.commandCalls(PutEventsCommand).map((c) => c.args[0].input);
    expect(put).toHaveLength(1);
    expect(put[0]!.Entries![0]).toMatchObject({
      EventBusName: "tme-bus",
      Source: "tme",
      DetailType: "task.created",
    });
  });

  it("keeps rows in the outbox when a sink's service is down, and the reaper relays them later", async () => {
    sqs.on(SendMessageBatchCommand).rejects(new Error("ServiceUnavailable"));
    await t.request("POST", "/task/create", { body: { name: "noop" } });
    await relayAfterChange(t.app, env)();
    expect(await pendingOutbox()).toEqual(["queue.dispatch"]);

    sqs.on(SendMessageBatchCommand).callsFake((input) => ({
      Successful: input.Entries.map((e: { Id: string }) => ({
        Id: e.Id,
        MessageId: "m",
        MD5OfMessageBody: "",
      })),
      Failed: [],
    }));
    await t.app.db.query("UPDATE outbox SET next_attempt_at = now() WHERE published_at IS NULL");
    const report = await runMaintenancePass(t.app, cloudOutboxSinks(t.app, env));
    expect(report.relayed).toEqual({ published: 1, failed: 0 });
    expect(await pendingOutbox()).toEqual([]);
  });

  it("syncs a new schedule to EventBridge Scheduler through the outbox", async () => {
    const created = await t.request("POST", "/schedule", { body: { name: "noop", interval: 3600 } });
    expect(created.status).toBe(201);
    await relayAfterChange(t.app, env)();
    const calls = scheduler.commandCalls(CreateScheduleCommand).map((c) => c.args[0].input);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ GroupName: "tme-schedules", ScheduleExpression: "rate(1 hour)" });
    expect(await pendingOutbox()).toEqual([]);
  });

  it("leaves types without a configured sink pending instead of dropping them", async () => {
    await t.request("POST", "/task/create", { body: { name: "noop" } });
    await relayAfterChange(t.app, { EVENT_BUS_NAME: "tme-bus", AWS_REGION: "eu-west-1" })();
    expect(await pendingOutbox()).toEqual(["queue.dispatch"]);
  });
});
