import { CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import {
  EventBridgeScheduler,
  eventBridgeSchedulerSink,
} from "../../functions/adapters/aws/eventbridge-scheduler.js";
import { PostgresOutboxStore } from "../../functions/adapters/postgres/outbox-repository.js";
import type { AppContext } from "../../functions/context.js";
import { type OutboxSink, relayOutboxBatch } from "../../functions/core/outbox/outbox.js";
import { createScheduleTarget } from "../../functions/handlers/schedule-target.js";
import { withTestApp } from "../helpers/test-app.js";

const t = withTestApp({ env: { TME_RUNTIME: "cloud" } });

async function createSchedule(body: Record<string, unknown>) {
  const res = await t.request("POST", "/schedule", { body });
  expect(res.status).toBe(201);
  return res.body as { id: string; namespace: string; next_run_at: string };
}

describe("the schedule-target handler", () => {
  let clock: Date;
  let app: AppContext;
  beforeEach(() => {
    app = { ...t.app, now: () => clock };
  });

  /** The event as EventBridge Scheduler delivers it: the Target's Input with its keywords filled in. */
  const invocation = (s: { id: string; namespace: string }, scheduledTime: string) => ({
    schedule_id: s.id,
    namespace: s.namespace,
    scheduled_time: scheduledTime,
    execution_id: "d32c5kddcf5bb8c3",
  });

  it("fires the due occurrence once; a duplicate invocation is a no-op; the next one fires the next", async () => {
    const s = await createSchedule({ name: "noop_cloud", interval: 300, overlap: "allow" });
    const fire = createScheduleTarget(app);
    const due = new Date(s.next_run_at);

    clock = new Date(due.getTime() + 2000);
    const first = await fire(invocation(s, due.toISOString().replace(".000Z", "Z")));
    expect(first).toEqual({
      schedule_id: s.id,
      outcome: "fired",
      task_id: expect.stringMatching(/^tsk_/),
      scheduled_for: due.toISOString(),
    });
    const again = await fire(invocation(s, due.toISOString()));
    expect(again).toEqual({ schedule_id: s.id, outcome: "not_due" });

    // Scheduler's own rate timeline may run a few seconds ahead of TME's: still that occurrence.
    const nextDue = new Date(due.getTime() + 300_000);
    clock = new Date(nextDue.getTime() - 5000);
    const second = await fire(invocation(s, clock.toISOString()));
    expect(second).toMatchObject({ outcome: "fired", scheduled_for: nextDue.toISOString() });

    const tasks = await t.app.db.rows<{ id: string }>(
      "SELECT id FROM tasks WHERE schedule_id = $1 ORDER BY created_at",
      [s.id],
    );
    expect(tasks.map((r) => r.id)).toEqual([first.task_id, second.task_id]);
    const fired = await t.app.db.rows<{ data: any }>(
      "SELECT data FROM task_events WHERE type = 'schedule.fired' AND task_id = $1",
      [first.task_id],
    );
    expect(fired[0]!.data).toMatchObject({
      schedule_id: s.id,
      trigger: "timeline",
      missed_count: 0,
      late_ms: 2000,
    });
  });

  it("answers gone for a deleted schedule and invalid_event for a malformed one, without throwing", async () => {
    const s = await createSchedule({ name: "noop_cloud_gone", interval: 300 });
    await t.request("DELETE", `/schedule/${s.id}`);
    clock = new Date(Date.parse(s.next_run_at) + 1000);
    const fire = createScheduleTarget(app);
    expect(await fire(invocation(s, s.next_run_at))).toEqual({ schedule_id: s.id, outcome: "gone" });
    expect(await fire({ hello: "world" })).toEqual({ schedule_id: null, outcome: "invalid_event" });
  });
});

describe("scheduler.sync through the outbox", () => {
  const client = new SchedulerClient({ region: "eu-central-1" });
  const mock = mockClient(client);
  const scheduler = new EventBridgeScheduler({
    client,
    groupName: "tme-user-schedules",
    targetArn: "arn:aws:lambda:eu-central-1:123456789012:function:tme-schedule-target",
    roleArn: "arn:aws:iam::123456789012:role/tme-scheduler",
    deadLetterArn: "arn:aws:sqs:eu-central-1:123456789012:tme-schedule-dlq",
  });
  // Everything else in the outbox (events) is not this test's business.
  const elsewhere: OutboxSink = {
    name: "elsewhere",
    accepts: () => true,
    publish: async () => ({ failed: [] }),
  };
  const relay = () =>
    relayOutboxBatch(new PostgresOutboxStore(t.app.db), [
      eventBridgeSchedulerSink(scheduler, t.app.schedules),
      elsewhere,
    ]);
  const syncRows = (id: string) =>
    t.app.db.rows<{ id: number; published_at: Date | null; attempts: number; last_error: string | null }>(
      "SELECT id, published_at, attempts, last_error FROM outbox WHERE type = 'scheduler.sync' AND payload->>'schedule_id' = $1 ORDER BY id",
      [id],
    );

  it("a Scheduler outage leaves the change pending; the retry applies the schedule's present state", async () => {
    await relay(); // drain what earlier tests left
    mock.reset();
    mock.on(CreateScheduleCommand).rejects(new Error("ServiceUnavailable: try later"));
    const s = await createSchedule({ name: "noop_sync", interval: 600 });
    await relay();
    const [pending] = await syncRows(s.id);
    expect(pending).toMatchObject({
      published_at: null,
      attempts: 1,
      last_error: expect.stringMatching(/try later/),
    });

    // Paused while the first sync waits: when the old row is retried it must not re-enable it.
    await t.request("POST", `/schedule/${s.id}/pause`);
    mock.reset();
    mock.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:::schedule/x" });
    await t.app.db.query("UPDATE outbox SET next_attempt_at = now() WHERE type = 'scheduler.sync'");
    await relay();
    // Both relayed, so both forgotten: the relay deletes what it has published.
    expect(await syncRows(s.id)).toEqual([]);
    const inputs = mock.commandCalls(CreateScheduleCommand).map((c) => c.args[0].input);
    expect(inputs.length).toBe(2);
    for (const input of inputs) {
      expect(input).toMatchObject({ Name: s.id, ScheduleExpression: "rate(10 minutes)", State: "DISABLED" });
    }
  });
});
