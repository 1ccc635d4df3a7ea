import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
} from "@aws-sdk/client-eventbridge";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventBridgeBusSink } from "../../functions/adapters/aws/eventbridge-bus.js";
import { sqsTaskQueueSink, type TaskQueueUrls } from "../../functions/adapters/aws/sqs-task-queue.js";
import {
  newEvent,
  QUEUE_DISPATCH,
  type QueueDispatch,
  type TmeEvent,
} from "../../functions/core/events/event.js";
import type { OutboxMessage, OutboxSink } from "../../functions/core/outbox/outbox.js";
import { SCHEDULER_SYNC } from "../../functions/core/schedules/scheduler-port.js";
import { localEventBusSink } from "../../functions/local/event-bus-sink.js";
import { localQueueSink } from "../../functions/local/outbox-relay-service.js";
import { MOTO_MISSING, type Moto, motoInstalled, startMoto } from "../helpers/moto.js";
import { insertTask } from "../helpers/tasks.js";
import { withTestApp } from "../helpers/test-app.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The outbox sink port, for its two roles: the event bus (local: the webhook dispatcher in
 * process; cloud: EventBridge, whose rule feeds an SQS queue) and the task queue (local: the
 * tasks table itself, which workers claim from; cloud: one SQS queue per priority class).
 * One contract per role, each run against both twins; the cloud twins on moto_server.
 */
let moto: Moto | undefined;
const t = withTestApp();
beforeAll(async () => {
  if (motoInstalled) moto = await startMoto();
});
afterAll(async () => {
  await moto?.stop();
});
if (!motoInstalled) console.log(`[outbox sink contracts] cloud twins skipped: ${MOTO_MISSING}`);

let nextId = 1;
function messageOf(type: string, payload: unknown, eventId: string): OutboxMessage {
  return { id: nextId++, eventId, namespace: "default", type, payload, attempts: 0 };
}

async function drainQueue(sqs: SQSClient, url: string): Promise<string[]> {
  const bodies: string[] = [];
  for (;;) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    if (Messages.length === 0) return bodies;
    bodies.push(...Messages.map((m) => m.Body!));
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: url,
        Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
  }
}

// ---- the event bus ------------------------------------------------------------------------

interface EventBusTwin {
  sink: OutboxSink;
  /** The events that reached what the webhook dispatcher reads, as it reads them. */
  arrived(): Promise<Array<{ id: string; type: string; data: Record<string, unknown> }>>;
}

function eventBusContract(twin: string, setup: () => Promise<EventBusTwin>, skip?: string) {
  describe.skipIf(skip !== undefined)(`event bus sink contract: ${twin}`, () => {
    let bus: EventBusTwin;
    beforeAll(async () => {
      bus = await setup();
    });

    it("accepts the event families (task, schedule, alert) and no queue or scheduler signal", () => {
      for (const type of ["task.created", "task.failed", "schedule.fired", "alert.raised"]) {
        expect(bus.sink.accepts(type), type).toBe(true);
      }
      for (const type of [QUEUE_DISPATCH, SCHEDULER_SYNC]) expect(bus.sink.accepts(type), type).toBe(false);
    });

    it("publishes a batch larger than one bus call with no failure, each event arriving once, whole", async () => {
      const events = Array.from({ length: 23 }, (_, i) =>
        newEvent(
          i % 2 ? "task.succeeded" : "task.created",
          "default",
          { task: { id: `tsk_contract_${i}`, name: "noop", labels: {} } },
          new Date(),
        ),
      );
      const result = await bus.sink.publish(events.map((e) => messageOf(e.type, e, e.id)));
      expect(result.failed).toEqual([]);
      const wanted = new Set(events.map((e) => e.id));
      const arrived = await waitFor(
        "every event on the bus",
        async () => {
          const seen = (await bus.arrived()).filter((a) => wanted.has(a.id));
          return seen.length >= events.length ? seen : undefined;
        },
        10_000,
      );
      expect(arrived.map((a) => a.id).sort()).toEqual([...wanted].sort());
      for (const event of events) {
        const got = arrived.find((a) => a.id === event.id)!;
        expect({ type: got.type, data: got.data }).toEqual({ type: event.type, data: event.data });
      }
    });
  });
}

eventBusContract("local (the webhook dispatcher in this process)", async () => {
  // The dispatcher keeps an event only for a subscription it matches: one that matches all.
  await t.app.subscriptions.insert({
    id: "sub_contract_all",
    namespace: "default",
    event_types: ["*"],
    callback_url: "http://127.0.0.1:9/never-called",
    format: "json",
    auth_type: "none",
    auth_username: null,
    auth_secret: null,
    filter: {},
    enabled: true,
  });
  return {
    sink: localEventBusSink(t.app),
    async arrived() {
      const rows = await t.app.db.rows<{ payload: TmeEvent }>("SELECT payload FROM webhook_events");
      return rows.map((r) => r.payload);
    },
  };
});

eventBusContract(
  "EventBridge (cloud, on moto_server: bus -> rule -> SQS, as the stack wires it)",
  async () => {
    const m = moto!;
    const events = new EventBridgeClient(m.clientConfig);
    const sqs = new SQSClient(m.clientConfig);
    await events.send(new CreateEventBusCommand({ Name: "tme-contract-bus" }));
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "tme-contract-webhooks" }));
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }),
    );
    await events.send(
      new PutRuleCommand({
        Name: "tme-webhooks",
        EventBusName: "tme-contract-bus",
        EventPattern: JSON.stringify({ source: ["tme"] }),
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: "tme-webhooks",
        EventBusName: "tme-contract-bus",
        Targets: [{ Id: "webhooks", Arn: Attributes!.QueueArn! }],
      }),
    );
    const seen: Array<{ id: string; type: string; data: Record<string, unknown> }> = [];
    return {
      sink: eventBridgeBusSink({ client: events, eventBusName: "tme-contract-bus", retryDelayMs: 1 }),
      async arrived() {
        for (const body of await drainQueue(sqs, QueueUrl!)) {
          const detail = JSON.parse(body).detail as TmeEvent;
          seen.push({ id: detail.id, type: detail.type, data: detail.data });
        }
        return seen;
      },
    };
  },
  motoInstalled ? undefined : MOTO_MISSING,
);

// ---- the task queue -----------------------------------------------------------------------

interface TaskQueueTwin {
  sink: OutboxSink;
  /** The tasks the workers of this runtime can now see as dispatched, by id. */
  dispatched(): Promise<string[]>;
}

function taskQueueContract(twin: string, setup: () => Promise<TaskQueueTwin>, skip?: string) {
  describe.skipIf(skip !== undefined)(`task queue sink contract: ${twin}`, () => {
    let queue: TaskQueueTwin;
    beforeAll(async () => {
      queue = await setup();
    });

    it("accepts queue dispatches only", () => {
      expect(queue.sink.accepts(QUEUE_DISPATCH)).toBe(true);
      for (const type of ["task.created", SCHEDULER_SYNC, "alert.raised"]) {
        expect(queue.sink.accepts(type), type).toBe(false);
      }
    });

    it("publishes due dispatches of every priority class with no failure, and workers can see each", async () => {
      const dispatches: QueueDispatch[] = [];
      for (const priority of [0, 5, 9, 3, 7]) {
        for (let i = 0; i < 5; i++) {
          const id = await insertTask(t.app.db, { priority, name: "contract_dispatch" });
          dispatches.push({ task_id: id, attempt: 0, priority, run_at: new Date().toISOString() });
        }
      }
      const result = await queue.sink.publish(
        dispatches.map((d) => messageOf(QUEUE_DISPATCH, d, `evt_${d.task_id}`)),
      );
      expect(result.failed).toEqual([]);
      const seen = await queue.dispatched();
      expect(seen.filter((id) => dispatches.some((d) => d.task_id === id)).sort()).toEqual(
        dispatches.map((d) => d.task_id).sort(),
      );
    });
  });
}

taskQueueContract("local (workers claim from the tasks table)", async () => ({
  sink: localQueueSink,
  async dispatched() {
    // Locally the queue is the table: a queued task whose run_at has come is what workers claim.
    const rows = await t.app.db.rows<{ id: string }>(
      `SELECT id FROM tasks WHERE name = 'contract_dispatch' AND status = 'queued' AND run_at <= now()`,
    );
    return rows.map((r) => r.id);
  },
}));

taskQueueContract(
  "SQS (cloud, on moto_server: one queue per priority class)",
  async () => {
    const sqs = new SQSClient(moto!.clientConfig);
    const urls = {} as TaskQueueUrls;
    for (const priorityClass of ["high", "normal", "low"] as const) {
      const { QueueUrl } = await sqs.send(
        new CreateQueueCommand({ QueueName: `tme-contract-${priorityClass}` }),
      );
      urls[priorityClass] = QueueUrl!;
    }
    const seen: string[] = [];
    return {
      sink: sqsTaskQueueSink(urls, sqs),
      async dispatched() {
        for (const url of Object.values(urls)) {
          for (const body of await drainQueue(sqs, url))
            seen.push((JSON.parse(body) as QueueDispatch).task_id);
        }
        return seen;
      },
    };
  },
  motoInstalled ? undefined : MOTO_MISSING,
);
