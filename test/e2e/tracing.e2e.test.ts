import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InProcessTme, startInProcessTme } from "../helpers/local-runtime.js";
import { eventually, type Receiver, startReceiver } from "../helpers/receiver.js";

let tme: InProcessTme;
let receiver: Receiver;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  receiver = await startReceiver();
  tme = await startInProcessTme({ spanExporter: exporter });
});

afterAll(async () => {
  await tme?.close();
  await receiver?.close();
});

describe("OpenTelemetry traces", () => {
  it("follow one task from its create request through its attempt to its webhook, in one trace", async () => {
    const subscription = await tme.api("POST", "/events", {
      event_types: ["task.succeeded"],
      callback_url: `${receiver.url}/hook`,
    });
    expect(subscription.status).toBe(201);

    // The caller's own trace continues through TME.
    const callerTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const response = await fetch(`${tme.tme.url}/task/create`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${tme.key}`,
        "content-type": "application/json",
        traceparent: `00-${callerTraceId}-00f067aa0ba902b7-01`,
      },
      body: JSON.stringify({ name: "noop_traced" }),
    });
    expect(response.status).toBe(201);
    const taskId = ((await response.json()) as { id: string }).id;

    const [hook] = await receiver.waitFor(1, 30_000);
    const spans = await eventually(async () => {
      const all = exporter.getFinishedSpans();
      return all.some((s) => s.name === "webhook.deliver" && s.attributes["tme.task.id"] === taskId)
        ? all
        : undefined;
    });

    const create = spans.find((s) => s.name === "POST /task/create")!;
    const attempt = spans.find((s) => s.name === "task.attempt" && s.attributes["tme.task.id"] === taskId)!;
    const delivery = spans.find(
      (s) => s.name === "webhook.deliver" && s.attributes["tme.task.id"] === taskId,
    )!;
    const claim = spans.find(
      (s) => s.name === "task.claim" && (s.attributes["tme.task.ids"] as string[]).includes(taskId),
    )!;
    expect(create).toBeDefined();
    expect(attempt).toBeDefined();
    expect(claim).toBeDefined();

    // One trace: the caller's, through the request, into the attempt and the delivery.
    expect(create.spanContext().traceId).toBe(callerTraceId);
    expect(create.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
    expect(create.attributes["http.route"]).toBe("/task/create");
    expect(create.attributes["http.response.status_code"]).toBe(201);
    expect(attempt.spanContext().traceId).toBe(callerTraceId);
    expect(attempt.parentSpanContext?.spanId).toBe(create.spanContext().spanId);
    expect(attempt.attributes["tme.task.outcome"]).toBe("succeeded");
    expect(delivery.spanContext().traceId).toBe(callerTraceId);
    expect(delivery.parentSpanContext?.spanId).toBe(create.spanContext().spanId);
    expect(delivery.attributes["tme.delivery.outcome"]).toBe("succeeded");
    expect(delivery.attributes["http.response.status_code"]).toBe(200);
    // The claim batch is a trace of its own, linked to the task's.
    expect(claim.links.map((l) => l.context.spanId)).toContain(create.spanContext().spanId);

    // The webhook request carries the delivery span's context to the receiver.
    expect(hook!.headers.traceparent).toBe(`00-${callerTraceId}-${delivery.spanContext().spanId}-01`);
    // Stored with the task, so another process's worker would find it too.
    const { rows } = await tme.database.db.query<{ trace_context: string }>(
      "SELECT trace_context FROM tasks WHERE id = $1",
      [taskId],
    );
    expect(rows[0]!.trace_context).toBe(`00-${callerTraceId}-${create.spanContext().spanId}-01`);
  });
});
