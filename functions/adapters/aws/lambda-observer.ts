import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { TME_METRICS } from "../../config/cloud-metrics.js";
import type {
  DeliveryEnd,
  ObservedDelivery,
  Observer,
  RequestEnd,
} from "../../core/observability/observer.js";
import { type AttemptResult, FAILED_ATTEMPT_RESULTS } from "../../core/tasks/run-attempt.js";
import type { Task } from "../../core/tasks/task.js";
import type { GaugeSnapshot } from "../metrics/tme-metrics.js";
import type { LambdaTelemetry } from "./lambda-telemetry.js";

/** The metric counting tasks that ended with each final result. */
const FINAL_METRIC: Partial<Record<AttemptResult, string>> = {
  succeeded: TME_METRICS.tasksSucceeded,
  failed: TME_METRICS.tasksFailed,
  timed_out: TME_METRICS.tasksTimedOut,
  cancelled: TME_METRICS.tasksCancelled,
  retrying: TME_METRICS.attemptsRetrying,
  lost: TME_METRICS.attemptsLost,
};

type Annotations = Record<string, string | number | boolean>;

/**
 * The cloud runtime's observer (the local one is RuntimeObserver: Prometheus and OpenTelemetry):
 * the same boundaries, counted as EMF metrics and traced as X-Ray subsegments of the invocation.
 * X-Ray's trace ids are not W3C traceparents, so no trace context is stored with tasks here.
 */
export class LambdaObserver implements Observer {
  readonly tracing = false;

  constructor(private readonly telemetry: LambdaTelemetry) {}

  traceContext(): string | null {
    return null;
  }

  taskCreated(): void {
    this.count(TME_METRICS.tasksCreated);
  }

  async attempt(task: Task, run: () => Promise<AttemptResult>): Promise<AttemptResult> {
    const startedAt = Date.now();
    this.count(TME_METRICS.attemptsStarted);
    if (task.attempt === 1 && task.series === 0) {
      this.milliseconds(TME_METRICS.queueLatency, startedAt - task.run_at.getTime());
    }
    let outcome: AttemptResult = "lost";
    try {
      outcome = await this.subsegment(
        "task.attempt",
        { task_id: task.id, task_name: task.name, namespace: task.namespace, attempt: task.attempt },
        async (annotate) => {
          const result = await run();
          annotate({ outcome: result }, FAILED_ATTEMPT_RESULTS.has(result));
          return result;
        },
      );
      return outcome;
    } finally {
      const metric = FINAL_METRIC[outcome];
      if (metric) this.count(metric);
      this.milliseconds(TME_METRICS.attemptDuration, Date.now() - startedAt);
    }
  }

  claim<T extends Task | readonly Task[] | undefined>(run: () => Promise<T>): Promise<T> {
    return run();
  }

  async delivery<T>(
    delivery: ObservedDelivery,
    run: (traceHeaders: Record<string, string>) => Promise<{ value: T; end: DeliveryEnd }>,
  ): Promise<T> {
    const { value, end } = await this.subsegment(
      "webhook.deliver",
      {
        delivery_id: delivery.deliveryId,
        subscription_id: delivery.subscriptionId,
        event_type: delivery.eventType,
        ...(delivery.taskId ? { task_id: delivery.taskId } : {}),
      },
      async (annotate) => {
        const result = await run({});
        annotate(
          {
            outcome: result.end.outcome,
            ...(result.end.httpStatus === undefined ? {} : { http_status: result.end.httpStatus }),
          },
          result.end.outcome !== "succeeded",
        );
        return result;
      },
    );
    this.count(end.outcome === "succeeded" ? TME_METRICS.webhooksSucceeded : TME_METRICS.webhooksFailed);
    this.milliseconds(TME_METRICS.webhookLatency, end.latencyMs);
    return value;
  }

  async request<T>(
    method: string,
    _headers: Record<string, string | undefined>,
    run: () => Promise<{ value: T; end: RequestEnd }>,
  ): Promise<T> {
    // API Gateway counts requests, statuses and latency itself; the subsegment says which route.
    const { value } = await this.subsegment("http.request", { method }, async (annotate) => {
      const result = await run();
      annotate({ route: result.end.route, status: result.end.status }, result.end.status >= 500);
      return result;
    });
    return value;
  }

  /** What one reaper pass found and did: its heartbeat, and the backlog gauges alarms read. */
  reaperPass(
    report: { reaped: { requeued: number; failed: number }; relayed: { failed: number } },
    gauges: GaugeSnapshot,
  ): void {
    this.count(TME_METRICS.reaperRuns);
    this.count(TME_METRICS.tasksReaped, report.reaped.requeued + report.reaped.failed);
    this.count(TME_METRICS.outboxRelayFailed, report.relayed.failed);
    this.count(TME_METRICS.outboxBacklog, gauges.outboxBacklog);
    this.telemetry.metrics.addMetric(
      TME_METRICS.outboxOldestAge,
      MetricUnit.Seconds,
      Math.round(gauges.outboxOldestAgeSeconds),
    );
    this.count(TME_METRICS.schedulesLate, gauges.schedulesLate);
  }

  /** Events too large for PutEvents that went to the bus as a reference (eventbridge-bus.ts). */
  eventsSentAsReference(count: number): void {
    this.count(TME_METRICS.eventsSentAsReference, count);
  }

  private count(name: string, value = 1): void {
    this.telemetry.metrics.addMetric(name, MetricUnit.Count, value);
  }

  private milliseconds(name: string, value: number): void {
    this.telemetry.metrics.addMetric(name, MetricUnit.Milliseconds, Math.max(0, value));
  }

  /**
   * Runs `work` in a subsegment of the current (sub)segment, annotated so X-Ray can search by
   * task or subscription; without a segment (tracing off, or not in Lambda) it just runs.
   */
  private async subsegment<T>(
    name: string,
    annotations: Annotations,
    work: (annotate: (more: Annotations, isError: boolean) => void) => Promise<T>,
  ): Promise<T> {
    const { tracer } = this.telemetry;
    const parent = tracer.isTracingEnabled() ? tracer.getSegment() : undefined;
    if (!parent) return work(() => {});
    const sub = parent.addNewSubsegment(name);
    tracer.setSegment(sub);
    const annotate = (more: Annotations) => {
      for (const [key, value] of Object.entries(more)) sub.addAnnotation(key, value);
    };
    annotate(annotations);
    try {
      return await work((more, isError) => {
        annotate(more);
        if (isError) sub.addErrorFlag();
      });
    } catch (error) {
      sub.addError(error as Error);
      throw error;
    } finally {
      sub.close();
      tracer.setSegment(parent);
    }
  }
}
