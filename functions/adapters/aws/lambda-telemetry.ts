import { getXRayTraceIdFromEnv } from "@aws-lambda-powertools/commons/utils/env";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { Tracer } from "@aws-lambda-powertools/tracer";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import type { TmeFunctionName } from "../../config/cloud-environment.js";
import { METRIC_NAMESPACE, METRIC_SERVICE } from "../../config/cloud-metrics.js";

/**
 * What a TME Lambda reports about itself, with Powertools for AWS Lambda: EMF metrics (one JSON
 * line CloudWatch turns into metrics, no API call), X-Ray subsegments inside the segment
 * Lambda's active tracing opens, and the invocation's fields on every log line. The logger
 * stays TME's pino logger (one logger in both runtimes); it writes the keys Powertools Logger
 * would (function_request_id, cold_start, xray_trace_id, ...), so Logs Insights queries written
 * for Powertools work on TME's lines.
 */
export interface LambdaTelemetry {
  readonly fn: TmeFunctionName;
  readonly metrics: Metrics;
  readonly tracer: Tracer;
}

const telemetryByFunction = new Map<TmeFunctionName, LambdaTelemetry>();

/** This container's function's telemetry, once it has one (a Lambda container runs one function). */
let container: LambdaTelemetry | undefined;

/** For adapters below the handler (the outbox sinks): undefined outside a TME Lambda. */
export function containerTelemetry(): LambdaTelemetry | undefined {
  return container;
}

/**
 * An AWS SDK client whose calls become X-Ray subsegments (service, operation, status) when
 * this is a traced Lambda; the client unchanged anywhere else.
 */
export function tracedAwsClient<T>(client: T): T {
  return container ? container.tracer.captureAWSv3Client(client) : client;
}

/** The one Metrics and Tracer of this container's function (a Lambda container runs one). */
export function lambdaTelemetry(fn: TmeFunctionName): LambdaTelemetry {
  let telemetry = telemetryByFunction.get(fn);
  if (!telemetry) {
    telemetry = {
      fn,
      metrics: new Metrics({ namespace: METRIC_NAMESPACE, serviceName: METRIC_SERVICE }),
      // No automatic HTTP subsegments: they record the URL, and a webhook's URL may carry its
      // receiver's secret (Slack's do, in the path). Deliveries get a subsegment of their own
      // without it (lambda-observer.ts); AWS SDK clients are captured one by one.
      tracer: new Tracer({ serviceName: `tme-${fn}`, captureHTTPsRequests: false }),
    };
    telemetryByFunction.set(fn, telemetry);
    container = telemetry;
  }
  return telemetry;
}

/** The current invocation, as Powertools Logger names its fields; undefined between invocations. */
let invocation: Record<string, unknown> | undefined;
let coldStart = true;

/** Fields for every log line written during an invocation (createLogger's `fields`). */
export function invocationLogFields(): Record<string, unknown> {
  return invocation ?? {};
}

function invocationContext(): middy.MiddlewareObj<unknown, unknown, Error, Context> {
  const end = () => {
    invocation = undefined;
  };
  return {
    before: ({ context }) => {
      invocation = {
        function_name: context.functionName,
        function_request_id: context.awsRequestId,
        function_arn: context.invokedFunctionArn,
        function_memory_size: Number(context.memoryLimitInMB),
        cold_start: coldStart,
        xray_trace_id: getXRayTraceIdFromEnv(),
      };
      coldStart = false;
    },
    after: end,
    onError: end,
  };
}

/**
 * Publishes what the invocation recorded, and a ColdStart metric on the first one. Powertools'
 * logMetrics would also log a warning for every invocation that recorded nothing (most GETs).
 */
function publishMetrics(metrics: Metrics): middy.MiddlewareObj<unknown, unknown, Error, Context> {
  let first = true;
  const publish = () => {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  };
  return {
    before: ({ context }) => {
      if (first) metrics.captureColdStartMetric(context.functionName);
      first = false;
    },
    after: publish,
    onError: publish,
  };
}

/**
 * A Lambda entry with TME's telemetry around it: invocation fields on every log line, a
 * subsegment for the handler (errors recorded on it), the metrics flushed at the end.
 */
export function lambdaHandler<E, R>(
  fn: TmeFunctionName,
  handler: (event: E, context: Context) => Promise<R>,
): middy.MiddyfiedHandler<E, R, Error, Context> {
  const { metrics, tracer } = lambdaTelemetry(fn);
  return middy<E, R, Error, Context>(handler)
    .use(invocationContext() as middy.MiddlewareObj<E, R, Error, Context>)
    .use(
      captureLambdaHandler(tracer, { captureResponse: false }) as middy.MiddlewareObj<E, R, Error, Context>,
    )
    .use(publishMetrics(metrics) as middy.MiddlewareObj<E, R, Error, Context>);
}
