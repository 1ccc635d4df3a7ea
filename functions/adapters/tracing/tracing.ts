import {
  type Context,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type Tracer,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";

export interface Tracing {
  tracer: Tracer;
  /** Sends the spans still buffered and stops the exporter. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  env: Record<string, string | undefined>;
  version: string;
  /** A test's exporter (spans go out one by one); otherwise OTLP over HTTP when configured. */
  exporter?: SpanExporter;
}

/**
 * OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-only variant) is
 * set; OTEL_SDK_DISABLED=true turns it off regardless. The exporter reads the standard OTEL_*
 * variables itself (headers, timeout, compression). The provider is TME's own, not the global
 * one, so two runtimes in one process (tests) keep their spans apart.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing | undefined> {
  const { env } = options;
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === "true") return undefined;
  const configured = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (!options.exporter && !configured) return undefined;
  // The SDK only when tracing is on: off (the default) it would cost about 20 MB of idle memory.
  const [
    { AsyncLocalStorageContextManager },
    { OTLPTraceExporter },
    { resourceFromAttributes },
    sdk,
    { NodeTracerProvider },
  ] = await Promise.all([
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/sdk-trace-node"),
  ]);
  const { BatchSpanProcessor, SimpleSpanProcessor } = sdk;
  const exporter = options.exporter ?? new OTLPTraceExporter();
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      "service.name": env.OTEL_SERVICE_NAME || "tme",
      "service.version": options.version,
    }),
    spanProcessors: [options.exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter)],
  });
  // Spans find their parent through the active context: AsyncLocalStorage, set once per process.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  return { tracer: provider.getTracer("tme", options.version), shutdown: () => provider.shutdown() };
}

const propagator = new W3CTraceContextPropagator();

/** The traceparent (and tracestate) headers of a context. */
export function traceHeaders(ctx: Context): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, defaultTextMapSetter);
  return carrier;
}

/** The context a traceparent value (stored, or from a request's headers) continues. */
export function contextFrom(headers: Record<string, string | undefined>): Context {
  return propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
}
