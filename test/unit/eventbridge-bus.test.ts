import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { eventBridgeBusSink } from "../../functions/adapters/aws/eventbridge-bus.js";
import { newEvent } from "../../functions/core/events/event.js";
import type { OutboxMessage } from "../../functions/core/outbox/outbox.js";

const eventBridge = mockClient(EventBridgeClient);
beforeEach(() => eventBridge.reset());

function messages(count: number): OutboxMessage[] {
  return Array.from({ length: count }, (_, i) => {
    const event = newEvent(
      "task.created",
      "default",
      { task: { id: `tsk_${i}` } },
      new Date("2026-01-01T00:00:00Z"),
    );
    return {
      id: i + 1,
      eventId: event.id,
      namespace: "default",
      type: event.type,
      payload: event,
      attempts: 0,
    };
  });
}

const sink = () =>
  eventBridgeBusSink({
    client: new EventBridgeClient({ region: "eu-west-1" }),
    eventBusName: "tme-bus",
    retryDelayMs: 1,
  });

describe("EventBridge bus sink", () => {
  it("sends 25 events in 3 PutEvents calls of at most 10 entries, shaped for rules", async () => {
    eventBridge.on(PutEventsCommand).callsFake((input) => ({
      FailedEntryCount: 0,
      Entries: input.Entries.map((_: unknown, i: number) => ({ EventId: `e${i}` })),
    }));
    const result = await sink().publish(messages(25));
    expect(result).toEqual({ failed: [] });
    const calls = eventBridge.commandCalls(PutEventsCommand);
    expect(calls.map((c) => c.args[0].input.Entries?.length)).toEqual([10, 10, 5]);
    const first = calls[0]!.args[0].input.Entries![0]!;
    expect(first).toMatchObject({ EventBusName: "tme-bus", Source: "tme", DetailType: "task.created" });
    expect(JSON.parse(first.Detail!)).toMatchObject({
      type: "task.created",
      data: { task: { id: "tsk_0" } },
    });
  });

  it("retries only the failed entries, and reports those that keep failing", async () => {
    const sent: string[][] = [];
    eventBridge.on(PutEventsCommand).callsFake((input) => {
      const ids = input.Entries.map((e: { Detail: string }) => JSON.parse(e.Detail).data.task.id as string);
      sent.push(ids);
      // tsk_3 fails once then succeeds; tsk_7 always fails.
      const fails = (id: string) => id === "tsk_7" || (id === "tsk_3" && sent.length === 1);
      return {
        FailedEntryCount: ids.filter(fails).length,
        Entries: ids.map((id: string, i: number) =>
          fails(id) ? { ErrorCode: "ThrottlingException", ErrorMessage: "slow down" } : { EventId: `e${i}` },
        ),
      };
    });
    const result = await sink().publish(messages(10));
    expect(sent[0]).toHaveLength(10);
    expect(sent[1]).toEqual(["tsk_3", "tsk_7"]);
    expect(sent[2]).toEqual(["tsk_7"]);
    expect(sent).toHaveLength(3);
    expect(result.failed).toEqual([{ id: 8, error: "ThrottlingException: slow down" }]);
  });

  it("returns every entry of a call that throws as failed, so the relay retries them", async () => {
    eventBridge.on(PutEventsCommand).rejects(new Error("network down"));
    const result = await sink().publish(messages(3));
    expect(result.failed.map((f) => f.id)).toEqual([1, 2, 3]);
    expect(result.failed[0]!.error).toMatch(/network down/);
  });

  it("accepts event types only, not queue or scheduler signals", () => {
    const s = sink();
    expect(["task.failed", "schedule.fired", "alert.raised"].every(s.accepts)).toBe(true);
    expect(s.accepts("queue.dispatch")).toBe(false);
    expect(s.accepts("scheduler.sync")).toBe(false);
  });
});
