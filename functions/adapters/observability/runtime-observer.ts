import {
  type Context,
  context,
  type Link,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { withFields } from "../../core/objects.js";
import type {
  DeliveryEnd,
  ObservedDelivery,
  Observer,
  RequestEnd,
} from "../../core/observability/observer.js";
import { type AttemptResult, FAILED_ATTEMPT_RESULTS } from "../../core/tasks/run-attempt.js";
import { FINISHED_STATUSES, type Task } from "../../core/tasks/task.js";
import type { TmeMetrics } from "../metrics/tme-metrics.js";
import { contextFrom, traceHeaders } from "../tracing/tracing.js";

/** The final statuses an attempt can leave a task in. */
const FINAL: ReadonlySet<AttemptResult> = new Set(FINISHED_STATUSES);

const seconds = (ms: number) => Math.max(0, ms) / 1000;

/**
 * The local runtime's observer: Prometheus metrics always, OpenTelemetry spans when a tracer is
 * given. Spans of a task's attempts and webhooks continue the trace of the request that created
 * it (its stored traceparent), so one trace shows create, attempts and deliveries.
 */
export class RuntimeObserver implements Observer {
  private running = 0;

  constructor(
    private readonly metrics: TmeMetrics,
    private readonly tracer: Tracer | undefined,
  ) {}

  get tracing(): boolean {
    return this.tracer !== undefined;
  }

  /** Attempts running now in this process (the busy worker slots). */
  get attemptsRunning(): number {
    return this.running;
  }

  traceContext(): string | null {
    if (!this.tracer) return null;
    return traceHeaders(context.active()).traceparent ?? null;
  }

  taskCreated(task: Pick<Task, "namespace" | "name">): void {
    this.metrics.tasksCreated.inc(this.metrics.taskLabels(task));
  }

  async attempt(task: Task, run: () => Promise<AttemptResult>): Promise<AttemptResult> {
    const labels = this.metrics.taskLabels(task);
    const startedAt = Date.now();
    this.metrics.attemptsStarted.inc(labels);
    if (task.attempt === 1 && task.series === 0) {
      this.metrics.startLatency.observe(
        { task_name: labels.task_name },
        seconds(startedAt - task.run_at.getTime()),
      );
    }
    this.running++;
    let outcome: AttemptResult = "lost";
    try {
      outcome = await this.inSpan(
        "task.attempt",
        SpanKind.CONSUMER,
        contextFrom({ traceparent: task.trace_context ?? undefined }),
        {
          "tme.task.id": task.id,
          "tme.task.name": task.name,
          "tme.namespace": task.namespace,
          "tme.task.attempt": task.attempt,
          "tme.task.series": task.series,
        },
        async (span) => {
          const result = await run();
          span?.setAttribute("tme.task.outcome", result);
          if (FAILED_ATTEMPT_RESULTS.has(result))
            span?.setStatus({ code: SpanStatusCode.ERROR, message: result });
          return result;
        },
      );
      return outcome;
    } finally {
      this.running--;
      const ended = withFields(labels, { outcome });
      this.metrics.attemptsFinished.inc(ended);
      if (FINAL.has(outcome)) this.metrics.tasksFinished.inc(ended);
      this.metrics.attemptDuration.observe(
        { task_name: labels.task_name, outcome },
        seconds(Date.now() - startedAt),
      );
    }
  }

  async claim<T extends Task | readonly Task[] | undefined>(run: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    const claimed = await run();
    const tasks: readonly Task[] =
      claimed === undefined ? [] : Array.isArray(claimed) ? claimed : [claimed as Task];
    this.metrics.claims.inc({ result: tasks.length > 0 ? "claimed" : "empty" });
    // Only claims that took work get a span: an idle pool polling every second is not news.
    if (this.tracer && tasks.length > 0) {
      const links: Link[] = [];
      for (const task of tasks) {
        const linked = task.trace_context
          ? trace.getSpanContext(contextFrom({ traceparent: task.trace_context }))
          : undefined;
        if (linked) links.push({ context: linked, attributes: { "tme.task.id": task.id } });
      }
      const span = this.tracer.startSpan(
        "task.claim",
        {
          kind: SpanKind.INTERNAL,
          startTime: startedAt,
          links,
          attributes: { "tme.claim.count": tasks.length, "tme.task.ids": tasks.map((t) => t.id) },
        },
        context.active(),
      );
      span.end();
    }
    return claimed;
  }

  async delivery<T>(
    delivery: ObservedDelivery,
    run: (traceHeaders: Record<string, string>) => Promise<{ value: T; end: DeliveryEnd }>,
  ): Promise<T> {
    const { value, end } = await this.inSpan(
      "webhook.deliver",
      SpanKind.PRODUCER,
      contextFrom({ traceparent: delivery.traceContext ?? undefined }),
      {
        "tme.delivery.id": delivery.deliveryId,
        "tme.subscription.id": delivery.subscriptionId,
        "tme.event.type": delivery.eventType,
        ...(delivery.taskId ? { "tme.task.id": delivery.taskId } : {}),
      },
      async (span) => {
        const result = await run(span ? traceHeaders(trace.setSpan(context.active(), span)) : {});
        span?.setAttribute("tme.delivery.outcome", result.end.outcome);
        if (result.end.httpStatus !== undefined)
          span?.setAttribute("http.response.status_code", result.end.httpStatus);
        if (result.end.outcome !== "succeeded")
          span?.setStatus({ code: SpanStatusCode.ERROR, message: result.end.outcome });
        return result;
      },
    );
    this.metrics.webhookDeliveries.inc({ outcome: end.outcome });
    this.metrics.webhookDuration.observe({ outcome: end.outcome }, seconds(end.latencyMs));
    return value;
  }

  async request<T>(
    method: string,
    headers: Record<string, string | undefined>,
    run: () => Promise<{ value: T; end: RequestEnd }>,
  ): Promise<T> {
    const startedAt = Date.now();
    const { value, end } = await this.inSpan(
      method,
      SpanKind.SERVER,
      contextFrom({ traceparent: headers.traceparent, tracestate: headers.tracestate }),
      { "http.request.method": method },
      async (span) => {
        const result = await run();
        span?.updateName(`${method} ${result.end.route}`);
        span?.setAttribute("http.route", result.end.route);
        span?.setAttribute("http.response.status_code", result.end.status);
        if (result.end.status >= 500) span?.setStatus({ code: SpanStatusCode.ERROR });
        return result;
      },
    );
    this.metrics.httpRequests.inc({ method, route: end.route, status: String(end.status) });
    this.metrics.httpDuration.observe({ method, route: end.route }, seconds(Date.now() - startedAt));
    return value;
  }

  /** Runs fn in a new active span under `parent` (when tracing); a throw is recorded and rethrown. */
  private async inSpan<R>(
    name: string,
    kind: SpanKind,
    parent: Context,
    attributes: Record<string, string | number>,
    fn: (span: import("@opentelemetry/api").Span | undefined) => Promise<R>,
  ): Promise<R> {
    if (!this.tracer) return fn(undefined);
    return this.tracer.startActiveSpan(name, { kind, attributes }, parent, async (span) => {
      try {
        return await fn(span);
      } catch (error) {
        span.recordException(error as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        throw error;
      } finally {
        span.end();
      }
    });
  }
}
