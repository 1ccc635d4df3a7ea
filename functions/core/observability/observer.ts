import type { AttemptResult } from "../tasks/run-attempt.js";
import type { Task } from "../tasks/task.js";

/** A webhook attempt as the observer sees it: what it was for, and the trace it belongs to. */
export interface ObservedDelivery {
  deliveryId: string;
  subscriptionId: string;
  eventType: string;
  taskId: string | null;
  /** The traceparent stored with the task the event is about, when there is one. */
  traceContext: string | null;
}

/** How a webhook attempt ended, for counting. */
export interface DeliveryEnd {
  /** succeeded, retrying, failed, given_up. */
  outcome: string;
  latencyMs: number;
  httpStatus?: number;
}

/** How a request ended: its route template (never the raw path) and its status. */
export interface RequestEnd {
  route: string;
  status: number;
}

/**
 * Port: what TME reports about its own work, for metrics and traces. Core and handlers call it
 * at a few boundaries (a task stored, an attempt run, a claim, a webhook attempt, a request);
 * the local runtime plugs in Prometheus and OpenTelemetry, everything else gets `noObserver`.
 */
export interface Observer {
  /** True when spans are recorded: callers may then spend a query to find a trace context. */
  readonly tracing: boolean;
  /** The current trace context as a traceparent value, to store with a new task; null when none. */
  traceContext(): string | null;
  /** A task was stored (counted once its transaction committed). */
  taskCreated(task: Pick<Task, "namespace" | "name">): void;
  /** Runs one claimed attempt inside its span, counting its start, end, duration and queue wait. */
  attempt(task: Task, run: () => Promise<AttemptResult>): Promise<AttemptResult>;
  /** Runs one claim (of one task or a batch); a claim that took tasks gets a span. */
  claim<T extends Task | readonly Task[] | undefined>(run: () => Promise<T>): Promise<T>;
  /** Runs one webhook attempt inside its span; `run` gets the headers that carry the trace. */
  delivery<T>(
    delivery: ObservedDelivery,
    run: (traceHeaders: Record<string, string>) => Promise<{ value: T; end: DeliveryEnd }>,
  ): Promise<T>;
  /** Runs one API request inside its span (continuing the caller's traceparent), timing it. */
  request<T>(
    method: string,
    headers: Record<string, string | undefined>,
    run: () => Promise<{ value: T; end: RequestEnd }>,
  ): Promise<T>;
}

/** Observes nothing: the cloud runtime, tools and tests that do not ask for telemetry. */
export const noObserver: Observer = {
  tracing: false,
  traceContext: () => null,
  taskCreated: () => {},
  attempt: (_task, run) => run(),
  claim: (run) => run(),
  delivery: async (_delivery, run) => (await run({})).value,
  request: async (_method, _headers, run) => (await run()).value,
};
