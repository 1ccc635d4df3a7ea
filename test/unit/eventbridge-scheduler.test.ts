import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { EventBridgeScheduler } from "../../functions/adapters/aws/eventbridge-scheduler.js";
import { cronExpression, rateExpression } from "../../functions/core/schedules/eventbridge-expression.js";
import type { DesiredSchedule } from "../../functions/core/schedules/scheduler-port.js";

const GROUP = "tme-user-schedules";
const TARGET = "arn:aws:lambda:eu-central-1:123456789012:function:tme-schedule-target";
const ROLE = "arn:aws:iam::123456789012:role/tme-scheduler";
const DLQ = "arn:aws:sqs:eu-central-1:123456789012:tme-schedule-dlq";
// Every schedule retries a failed invocation for ten minutes, then dead-letters it.
const DELIVERY = {
  RetryPolicy: { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 600 },
  DeadLetterConfig: { Arn: DLQ },
};
const NOW = new Date("2026-06-01T12:00:00Z");
const TARGET_INPUT = (id: string, namespace = "default") =>
  JSON.stringify({
    schedule_id: id,
    namespace,
    scheduled_time: "<aws.scheduler.scheduled-time>",
    execution_id: "<aws.scheduler.execution-id>",
  });

const client = new SchedulerClient({ region: "eu-central-1" });
const mock = mockClient(client);
const scheduler = new EventBridgeScheduler({
  client,
  groupName: GROUP,
  targetArn: TARGET,
  roleArn: ROLE,
  deadLetterArn: DLQ,
  now: () => NOW,
});

const base = {
  namespace: "default",
  interval_seconds: null,
  cron: null,
  timezone: "UTC",
  start_at: null,
  end_at: null,
} as const;

beforeEach(() => {
  mock.reset();
  mock.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:::schedule/x" });
  mock.on(UpdateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:::schedule/x" });
  mock.on(DeleteScheduleCommand).resolves({});
});

describe("EventBridgeScheduler.apply", () => {
  it("creates an interval schedule as rate(...), flexible window off, targeting schedule-target", async () => {
    await scheduler.apply({ ...base, schedule_id: "sch_hourly", state: "enabled", interval_seconds: 3600 });
    const calls = mock.commandCalls(CreateScheduleCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({
      Name: "sch_hourly",
      GroupName: GROUP,
      Description: "TME schedule sch_hourly (namespace default)",
      ScheduleExpression: "rate(1 hour)",
      FlexibleTimeWindow: { Mode: "OFF" },
      State: "ENABLED",
      Target: { Arn: TARGET, RoleArn: ROLE, Input: TARGET_INPUT("sch_hourly"), ...DELIVERY },
    });
  });

  it("creates a cron schedule in its time zone, 6-field form, with start and end dates", async () => {
    await scheduler.apply({
      ...base,
      schedule_id: "sch_weekdays",
      namespace: "team-b",
      state: "enabled",
      cron: "30 2 * * 1-5",
      timezone: "Europe/Berlin",
      start_at: "2026-07-01T00:00:00.000Z",
      end_at: "2026-12-31T00:00:00.000Z",
    });
    expect(mock.commandCalls(CreateScheduleCommand)[0]!.args[0].input).toEqual({
      Name: "sch_weekdays",
      GroupName: GROUP,
      Description: "TME schedule sch_weekdays (namespace team-b)",
      ScheduleExpression: "cron(30 2 ? * 2-6 *)",
      ScheduleExpressionTimezone: "Europe/Berlin",
      StartDate: new Date("2026-07-01T00:00:00.000Z"),
      EndDate: new Date("2026-12-31T00:00:00.000Z"),
      FlexibleTimeWindow: { Mode: "OFF" },
      State: "ENABLED",
      Target: { Arn: TARGET, RoleArn: ROLE, Input: TARGET_INPUT("sch_weekdays", "team-b"), ...DELIVERY },
    });
  });

  it("pauses with State DISABLED (updating the schedule that exists)", async () => {
    mock
      .on(CreateScheduleCommand)
      .rejects(new ConflictException({ message: "exists", Message: "exists", $metadata: {} }));
    await scheduler.apply({ ...base, schedule_id: "sch_hourly", state: "disabled", interval_seconds: 3600 });
    const create = mock.commandCalls(CreateScheduleCommand)[0]!.args[0].input;
    const update = mock.commandCalls(UpdateScheduleCommand)[0]!.args[0].input;
    expect(create.State).toBe("DISABLED");
    expect(update).toEqual({
      Name: "sch_hourly",
      GroupName: GROUP,
      Description: "TME schedule sch_hourly (namespace default)",
      ScheduleExpression: "rate(1 hour)",
      FlexibleTimeWindow: { Mode: "OFF" },
      State: "DISABLED",
      Target: { Arn: TARGET, RoleArn: ROLE, Input: TARGET_INPUT("sch_hourly"), ...DELIVERY },
    });
  });

  it("deletes an absent schedule from the group; one already gone is fine", async () => {
    const absent: DesiredSchedule = { schedule_id: "sch_old", namespace: "default", state: "absent" };
    await scheduler.apply(absent);
    expect(mock.commandCalls(DeleteScheduleCommand)[0]!.args[0].input).toEqual({
      Name: "sch_old",
      GroupName: GROUP,
    });
    mock
      .on(DeleteScheduleCommand)
      .rejects(new ResourceNotFoundException({ message: "gone", Message: "gone", $metadata: {} }));
    await expect(scheduler.apply(absent)).resolves.toBeUndefined();
  });

  it("leaves out a start already past, and disables a schedule whose end has passed", async () => {
    await scheduler.apply({
      ...base,
      schedule_id: "sch_done",
      state: "enabled",
      interval_seconds: 600,
      start_at: "2026-01-01T00:00:00.000Z",
      end_at: "2026-05-01T00:00:00.000Z",
    });
    const input = mock.commandCalls(CreateScheduleCommand)[0]!.args[0].input;
    expect(input).toMatchObject({ ScheduleExpression: "rate(10 minutes)", State: "DISABLED" });
    expect(input.StartDate).toBeUndefined();
    expect(input.EndDate).toBeUndefined();
  });

  it("passes other API errors up, so the outbox row stays pending", async () => {
    mock.on(CreateScheduleCommand).rejects(new Error("ThrottlingException: slow down"));
    await expect(
      scheduler.apply({ ...base, schedule_id: "sch_x", state: "enabled", interval_seconds: 60 }),
    ).rejects.toThrow(/slow down/);
  });
});

describe("EventBridge expressions", () => {
  it.each([
    [60, "rate(1 minute)"],
    [300, "rate(5 minutes)"],
    [7200, "rate(2 hours)"],
    [86_400, "rate(1 day)"],
    [172_800, "rate(2 days)"],
  ])("interval %i s -> %s", (seconds, expression) => {
    expect(rateExpression(seconds)).toEqual({ expression });
  });

  it.each([
    ["* * * * *", "cron(* * * * ? *)"],
    ["*/15 * * * *", "cron(0/15 * * * ? *)"],
    ["0 9 * * 1-5", "cron(0 9 ? * 2-6 *)"],
    ["0 9 * * MON,WED,FRI", "cron(0 9 ? * 2,4,6 *)"],
    ["0 9 * * 0", "cron(0 9 ? * 1 *)"],
    ["0 9 * * 7", "cron(0 9 ? * 1 *)"],
    ["0 9 * * 5-7", "cron(0 9 ? * 1,6-7 *)"],
    ["0 9 * * 5#2", "cron(0 9 ? * 6#2 *)"],
    ["0 0 1 * *", "cron(0 0 1 * ? *)"],
    ["0 0 L * *", "cron(0 0 L * ? *)"],
    ["0 0 1 jan,jul *", "cron(0 0 1 JAN,JUL ? *)"],
  ])("cron %s -> %s", (cron, expression) => {
    expect(cronExpression(cron)).toEqual({ expression });
  });

  it.each([
    [30, /under 60 s/],
    [90, /whole number of minutes/],
  ])("interval %i s is refused with a reason", (seconds, reason) => {
    expect(rateExpression(seconds)).toEqual({ unsupported: expect.stringMatching(reason) });
  });

  it.each([
    ["0 9 1 * 1", /both day-of-month and day-of-week/],
    ["0 9 * * */2", /step/],
    ["0 9 * * 1#2,3", /mixes/],
  ])("cron %s is refused with a reason", (cron, reason) => {
    expect(cronExpression(cron)).toEqual({ unsupported: expect.stringMatching(reason) });
  });
});
