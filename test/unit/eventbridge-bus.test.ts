import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import {
  entrySize,
  eventBridgeBusSink,
  MAX_PUT_EVENTS_BYTES,
} from "../../functions/adapters/aws/eventbridge-bus.js";
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

  describe("PutEvents' 256 KB limit", () => {
    const accepting = () =>
      eventBridge.on(PutEventsCommand).callsFake((input) => {
        for (const entry of input.Entries) {
          // What EventBridge does with an entry of 256 KB or more, and with a call adding up to it.
          if (entrySize(entry) >= MAX_PUT_EVENTS_BYTES)
            throw new Error("ValidationException: entry too large");
        }
        const total = input.Entries.reduce(
          (n: number, e: Parameters<typeof entrySize>[0]) => n + entrySize(e),
          0,
        );
        if (total >= MAX_PUT_EVENTS_BYTES) throw new Error("ValidationException: request too large");
        return {
          FailedEntryCount: 0,
          Entries: input.Entries.map((_: unknown, i: number) => ({ EventId: `e${i}` })),
        };
      });

    function succeeded(id: number, output: string): OutboxMessage {
      const task = { id: `tsk_${id}`, name: "report", status: "succeeded", attempt: 1, output };
      const event = newEvent(
        "task.succeeded",
        "default",
        { task, worker_id: "w1" },
        new Date("2026-01-01T00:00:00Z"),
      );
      return { id, eventId: event.id, namespace: "default", type: event.type, payload: event, attempts: 0 };
    }

    it("sizes an entry as EventBridge does: Time 14 bytes, the rest in UTF-8 bytes", () => {
      expect(
        entrySize({ Source: "tme", DetailType: "task.created", Detail: '{"a":"é"}', Time: new Date() }),
      ).toBe(14 + 3 + 12 + 10);
      expect(entrySize({ Source: "tme", DetailType: "x", Resources: ["ab", "c"] })).toBe(3 + 1 + 3);
    });

    it("sends an event too large for the bus as a reference: small fields kept, what was left out named", async () => {
      accepting();
      let references = 0;
      const s = eventBridgeBusSink({
        client: new EventBridgeClient({ region: "eu-west-1" }),
        eventBusName: "tme-bus",
        retryDelayMs: 1,
        onSentAsReference: (count) => {
          references += count;
        },
      });
      const big = succeeded(1, "x".repeat(300_000));
      const small = succeeded(2, "small");
      const result = await s.publish([big, small]);
      expect(result).toEqual({ failed: [] });
      expect(references).toBe(1);
      const entries = eventBridge.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries!);
      expect(entries).toHaveLength(2);
      const reference = JSON.parse(entries[0]!.Detail!);
      expect(entrySize(entries[0]!)).toBeLessThan(2_000);
      expect(reference).toEqual({
        id: big.eventId,
        type: "task.succeeded",
        occurred_at: "2026-01-01T00:00:00.000Z",
        namespace: "default",
        data: { task: { id: "tsk_1", name: "report", status: "succeeded", attempt: 1 }, worker_id: "w1" },
        truncated: {
          reason: "event_too_large",
          original_bytes: expect.any(Number),
          omitted_fields: ["task.output"],
        },
      });
      expect(reference.truncated.original_bytes).toBeGreaterThan(300_000);
      // The other event goes whole, without the flag.
      expect(JSON.parse(entries[1]!.Detail!)).toEqual(small.payload);
    });

    it("splits a batch whose entries add up to the limit into calls under it", async () => {
      accepting();
      // Ten events of 100 KB each: under the limit one by one, not three together.
      const result = await sink().publish(
        Array.from({ length: 10 }, (_, i) => succeeded(i + 1, "y".repeat(100_000))),
      );
      expect(result).toEqual({ failed: [] });
      const calls = eventBridge.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries!);
      expect(calls.map((entries) => entries.length)).toEqual([2, 2, 2, 2, 2]);
      for (const entries of calls) {
        expect(entries.reduce((n, e) => n + entrySize(e), 0)).toBeLessThan(MAX_PUT_EVENTS_BYTES);
        for (const e of entries) expect(JSON.parse(e.Detail!).truncated).toBeUndefined();
      }
    });
  });
});
