import {
  CreateScheduleGroupCommand,
  GetScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
} from "@aws-sdk/client-scheduler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EventBridgeScheduler,
  eventBridgeSchedulerSink,
} from "../../functions/adapters/aws/eventbridge-scheduler.js";
import type { OutboxMessage, OutboxSink } from "../../functions/core/outbox/outbox.js";
import { type DesiredSchedule, SCHEDULER_SYNC } from "../../functions/core/schedules/scheduler-port.js";
import { localSchedulerSink } from "../../functions/local/scheduler-service.js";
import { MOTO_MISSING, type Moto, motoInstalled, startMoto } from "../helpers/moto.js";
import { withTestApp } from "../helpers/test-app.js";

/**
 * The scheduler port, as the outbox reaches it (scheduler.sync rows): locally the scheduler loop
 * reads the schedules table itself, so the sink has nothing to copy; in the cloud EventBridge
 * Scheduler holds one schedule per TME schedule. Either way, after the syncs of a schedule's
 * changes are relayed, the timer side holds each schedule as it now stands, however often a
 * sync is replayed. The cloud twin runs on moto_server.
 */
type Held = "enabled" | "disabled" | "absent";

interface SchedulerTwin {
  sink: OutboxSink;
  /** How the timer side of this runtime holds the schedule. */
  held(scheduleId: string): Promise<Held>;
}

let moto: Moto | undefined;
const t = withTestApp();
beforeAll(async () => {
  if (motoInstalled) moto = await startMoto();
});
afterAll(async () => {
  await moto?.stop();
});
if (!motoInstalled) console.log(`[scheduler contract] EventBridge Scheduler twin skipped: ${MOTO_MISSING}`);

let nextId = 1;
async function syncOf(scheduleId: string): Promise<OutboxMessage> {
  const desired: DesiredSchedule = (await t.app.schedules.desiredState(scheduleId)) ?? {
    schedule_id: scheduleId,
    namespace: "default",
    state: "absent",
  };
  return {
    id: nextId++,
    eventId: `evt_sync_${nextId}`,
    namespace: "default",
    type: SCHEDULER_SYNC,
    payload: desired,
    attempts: 0,
  };
}

async function createSchedule(body: Record<string, unknown>): Promise<string> {
  const res = await t.request("POST", "/schedule", { body });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

function schedulerContract(twin: string, setup: () => Promise<SchedulerTwin>, skip?: string) {
  describe.skipIf(skip !== undefined)(`scheduler contract: ${twin}`, () => {
    let scheduler: SchedulerTwin;
    beforeAll(async () => {
      scheduler = await setup();
    });

    it("accepts scheduler syncs only", () => {
      expect(scheduler.sink.accepts(SCHEDULER_SYNC)).toBe(true);
      for (const type of ["queue.dispatch", "task.created", "schedule.fired"]) {
        expect(scheduler.sink.accepts(type), type).toBe(false);
      }
    });

    it("holds an interval, a cron, a paused and a deleted schedule as each now stands, replays changing nothing", async () => {
      const interval = await createSchedule({ name: "noop_contract", interval: 3600 });
      const cron = await createSchedule({
        name: "noop_contract",
        cron: "30 2 * * *",
        timezone: "Europe/Paris",
      });
      const paused = await createSchedule({ name: "noop_contract", interval: 60 });
      const deleted = await createSchedule({ name: "noop_contract", interval: 60 });
      const ids = [interval, cron, paused, deleted];
      // The creates are relayed first, as the outbox would, then the later changes.
      expect((await scheduler.sink.publish(await Promise.all(ids.map(syncOf)))).failed).toEqual([]);
      expect((await t.request("POST", `/schedule/${paused}/pause`)).status).toBe(200);
      expect((await t.request("DELETE", `/schedule/${deleted}`)).status).toBe(204);
      const changes = await Promise.all([paused, deleted].map(syncOf));
      for (let replay = 0; replay < 2; replay++) {
        expect((await scheduler.sink.publish(changes)).failed).toEqual([]);
        expect(await Promise.all(ids.map((id) => scheduler.held(id)))).toEqual([
          "enabled",
          "enabled",
          "disabled",
          "absent",
        ]);
      }
    });
  });
}

schedulerContract("local (the scheduler loop reads the schedules table)", async () => ({
  sink: localSchedulerSink,
  async held(scheduleId) {
    const [row] = await t.app.db.rows<{ enabled: boolean; deleted_at: Date | null }>(
      "SELECT enabled, deleted_at FROM schedules WHERE id = $1",
      [scheduleId],
    );
    if (!row || row.deleted_at) return "absent";
    return row.enabled ? "enabled" : "disabled";
  },
}));

schedulerContract(
  "EventBridge Scheduler (cloud, on moto_server)",
  async () => {
    const m = moto!;
    const client = new SchedulerClient(m.clientConfig);
    const groupName = "tme-contract-schedules";
    await client.send(new CreateScheduleGroupCommand({ Name: groupName }));
    const scheduler = new EventBridgeScheduler({
      client,
      groupName,
      targetArn: `arn:aws:lambda:${m.region}:${m.account}:function:tme-schedule-target`,
      roleArn: `arn:aws:iam::${m.account}:role/tme-scheduler`,
      deadLetterArn: `arn:aws:sqs:${m.region}:${m.account}:tme-schedule-dlq`,
    });
    return {
      sink: eventBridgeSchedulerSink(scheduler, t.app.schedules),
      async held(scheduleId) {
        try {
          const found = await client.send(new GetScheduleCommand({ Name: scheduleId, GroupName: groupName }));
          return found.State === "DISABLED" ? "disabled" : "enabled";
        } catch (error) {
          if (error instanceof ResourceNotFoundException) return "absent";
          throw error;
        }
      },
    };
  },
  motoInstalled ? undefined : MOTO_MISSING,
);
