import http from "node:http";
import type { AddressInfo } from "node:net";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import { TmeMetrics } from "../adapters/metrics/tme-metrics.js";
import { RuntimeObserver } from "../adapters/observability/runtime-observer.js";
import type { Database } from "../adapters/postgres/database.js";
import { cachedGaugeSnapshot } from "../adapters/postgres/metrics-repository.js";
import { startTracing, type Tracing } from "../adapters/tracing/tracing.js";
import type { Config } from "../config/schema.js";
import type { MetricsScrape } from "../context.js";
import type { Logger } from "../logging/logger.js";

export const TME_VERSION = "0.1.0";

export interface LocalTelemetry {
  observer: RuntimeObserver;
  metrics: MetricsScrape;
  tracing: Tracing | undefined;
  /** Sends the spans still buffered. */
  stop(): Promise<void>;
}

/** Prometheus metrics (always) and OpenTelemetry traces (when configured) of one local runtime. */
export async function startLocalTelemetry(options: {
  config: Config;
  db: Database;
  logger: Logger;
  env?: Record<string, string | undefined>;
  spanExporter?: SpanExporter;
}): Promise<LocalTelemetry> {
  const { config, db, logger } = options;
  const settings = config.app.metrics;
  const slots = config.app.MAX_CONCURRENT_TASKS;
  let observer: RuntimeObserver | undefined;
  let lastErrorLoggedAt = 0;
  const metrics = new TmeMetrics(
    { maxTaskNames: settings.max_task_names, maxNamespaces: settings.max_namespaces },
    {
      snapshot: cachedGaugeSnapshot(db, settings.gauge_cache_ms),
      pool: () => ({
        total: db.pool.totalCount,
        idle: db.pool.idleCount,
        waiting: db.pool.waitingCount,
        max: config.db.pool.max,
      }),
      slots: () => {
        // An attempt whose end is still being written (completions are batched) has already
        // given its slot back and the pool may have started another: count at most the slots.
        const busy = Math.min(slots, observer?.attemptsRunning ?? 0);
        return { busy, free: slots - busy };
      },
      onSnapshotError: (error) => {
        // A scrape every few seconds against a database that is down: one line a minute is enough.
        if (Date.now() - lastErrorLoggedAt < 60_000) return;
        lastErrorLoggedAt = Date.now();
        logger.warn({ err: error }, "metrics: database gauges could not be read");
      },
    },
  );
  const tracing = await startTracing({
    env: options.env ?? process.env,
    version: TME_VERSION,
    exporter: options.spanExporter,
  });
  observer = new RuntimeObserver(metrics, tracing?.tracer);
  if (tracing) logger.info("OpenTelemetry tracing on");
  return {
    observer,
    metrics,
    tracing,
    stop: async () => {
      await tracing?.shutdown().catch((error) => logger.warn({ err: error }, "tracing shutdown"));
    },
  };
}

export interface MetricsServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * metrics.port: /metrics without a key, on 127.0.0.1 only, so a Prometheus on the same machine
 * scrapes it and nothing else can reach it. Everything else answers 404.
 */
export async function startMetricsServer(
  metrics: MetricsScrape,
  port: number,
  logger: Logger,
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
      res.end("only GET /metrics is served here\n");
      return;
    }
    metrics.scrape().then(
      ({ contentType, text }) => {
        res.writeHead(200, { "Content-Type": contentType, "Cache-Control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (error) => {
        logger.error({ err: error }, "metrics scrape");
        res.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" });
        res.end("metrics could not be collected\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}/metrics`,
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
