import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import { resolveIsolation } from "../../plugins/shell-sandbox.js";
import { PluginRegistry } from "../adapters/plugins/plugin-registry.js";
import { Database } from "../adapters/postgres/database.js";
import { eventSessionSettings } from "../adapters/postgres/event-writer.js";
import { migrate } from "../adapters/postgres/migrator.js";
import type { Config } from "../config/schema.js";
import { type AppContext, createAppContext } from "../context.js";
import { createApiKey, ensureBootstrapKey } from "../core/auth/api-keys.js";
import { newId } from "../core/ids.js";
import type { OutboxSink } from "../core/outbox/outbox.js";
import { createApiHandler } from "../http/pipeline.js";
import { routes } from "../http/routes/index.js";
import { createLogger, type Logger } from "../logging/logger.js";
import { alertEvaluatorService } from "./alert-evaluator-service.js";
import { assertDataDirWritable } from "./data-dir.js";
import { openDatabaseTarget } from "./database-target.js";
import { deliveryWorkerService } from "./delivery-worker-service.js";
import { localEventBusSink } from "./event-bus-sink.js";
import { taskEventStream } from "./event-stream.js";
import { type LocalHttpServer, startHttpServer } from "./http-server.js";
import { localQueueSink, outboxRelayService } from "./outbox-relay-service.js";
import { localSchedulerSink, schedulerService } from "./scheduler-service.js";
import { securityMaintenance } from "./security-maintenance.js";
import { startLocalTelemetry, startMetricsServer } from "./telemetry.js";
import { taskMaintenance, workerPool } from "./worker-pool.js";

/** A loop the local runtime runs beside the HTTP server (workers, scheduler, outbox relay...). */
export interface BackgroundService {
  name: string;
  start(): void | Promise<void>;
  /** Finish or hand back in-flight work, then resolve. */
  stop(): Promise<void>;
}

/** Builds the background loops for a context; each area of TME adds its own to the list below. */
export type ServiceFactory = (app: AppContext) => BackgroundService[];
const serviceFactories: ServiceFactory[] = [
  (app) => [outboxRelayService(app, localOutboxSinks(app))],
  (app) => [deliveryWorkerService(app), alertEvaluatorService(app)],
  (app) => [schedulerService(app)],
  (app) => [taskMaintenance(app), workerPool(app)],
  (app) => [securityMaintenance(app)],
];

/** Where outbox messages go in the local runtime; each area adds the sink for its messages. */
function localOutboxSinks(app: AppContext): OutboxSink[] {
  return [localQueueSink, localEventBusSink(app), localSchedulerSink];
}

export interface RunningTme {
  app: AppContext;
  url: string;
  databaseDescription: string;
  /** Set when this start created the first admin key. */
  adminKey: string | undefined;
  /** The keyless metrics listener (metrics.port), when configured. */
  metricsUrl: string | undefined;
  stop(): Promise<void>;
}

export interface StartOptions {
  config: Config;
  logger?: Logger;
  /** Human-facing lines (URL, database, first admin key). */
  print?: (line: string) => void;
  /** Where spans go instead of OTLP (tests use an in-memory exporter). */
  spanExporter?: SpanExporter;
  /** The database died for good (the embedded server could not be restarted). Default: logged. */
  onFatal?: (message: string) => void;
}

/** npm start: database, migrations, keys, the HTTP edge and the background loops, in one process. */
export async function startLocalRuntime(options: StartOptions): Promise<RunningTme> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config.app.LOG_LEVEL);
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));

  // The encryption key and the first admin key are written there, whichever database is used.
  assertDataDirWritable(config.dataDir);
  // Plugin mappings are checked before anything starts: a typo costs nothing to report.
  const plugins = await PluginRegistry.load(config.plugins, path.join(config.configDir, "task_plugins.yaml"));
  // Decided once, before anything runs: with shell.sandbox required and no working bubblewrap
  // this throws (one line, no start); otherwise the log says what a command can reach.
  const isolation = resolveIsolation(config.app.shell, [config.dataDir, config.configDir]);
  if (isolation.kind === "sandbox") logger.info({ command_isolation: isolation.kind }, isolation.detail);
  else
    logger.warn(
      { command_isolation: isolation.kind },
      `${isolation.detail}; a key with commands:run can reach that much (shell.sandbox: required refuses to start without bubblewrap)`,
    );
  const target = await openDatabaseTarget(config, (message) => logger.info(message), {
    onFatal: options.onFatal ?? ((message) => logger.error(message)),
  });
  const cleanups: Array<() => Promise<void>> = [() => target.stop()];
  const stopAll = async () => {
    for (const cleanup of cleanups.reverse())
      await cleanup().catch((error) => logger.error({ err: error }, "stop"));
  };
  try {
    const migrated = await migrate(target.connectionString);
    if (migrated.applied.length > 0) logger.info({ applied: migrated.applied }, "migrations applied");

    const db = new Database({
      connectionString: target.connectionString,
      ssl: false,
      max: config.db.pool.max,
      preparedStatements: config.db.prepared_statements,
      idleTimeoutMillis: config.db.pool.idle_timeout_ms,
      connectionTimeoutMillis: config.db.pool.connection_timeout_ms,
      // Well inside a lease: a frozen TME's locks are gone before its tasks' leases run out.
      idleInTransactionTimeoutMillis: Math.min(10_000, config.app.worker.lease_seconds * 500),
      settings: eventSessionSettings("local"),
      onConnectionError: (error) => logger.warn({ err: error.message }, "database connection lost"),
      onStorageFailure: (message) =>
        logger.error(
          { reason: message },
          "the database cannot write to its disk (full or read-only): writes answer 503 until space is freed",
        ),
    });
    cleanups.push(() => db.close());
    const telemetry = await startLocalTelemetry({ config, db, logger, spanExporter: options.spanExporter });
    cleanups.push(() => telemetry.stop());
    const app = {
      ...createAppContext(config, db, target.connectionString, logger, plugins, telemetry.observer),
      databaseState: target.state,
      commandIsolation: { kind: isolation.kind, detail: isolation.detail },
      metrics: telemetry.metrics,
    };

    // One owner per embedded data directory: tasks still running belong to an instance that
    // was killed, so they are taken back now rather than when their leases run out (to run
    // again once its commands' supervisors have had their kill grace to stop them).
    if (target.exclusive) {
      const reclaimed = await app.taskQueue.reclaimAll(
        "worker lost: the previous TME on this data directory stopped",
        config.app.worker.kill_grace_seconds,
      );
      if (reclaimed > 0) logger.warn({ reclaimed }, "took back the tasks of the previous instance");
    }

    const adminKey = await provisionKeys(app);

    const services = serviceFactories.flatMap((factory) => factory(app));
    for (const service of services) {
      await service.start();
      cleanups.push(() => service.stop());
    }

    const stream = taskEventStream(app);
    await stream.start();
    cleanups.push(() => stream.stop());
    const server: LocalHttpServer = await startHttpServer(
      createApiHandler(app, routes),
      config.app.port,
      (error) => logger.error({ err: error }, "http server"),
      config.app.host,
      config.app.security,
      { "/stream": stream.handler },
    );
    cleanups.push(() => server.close());

    let metricsUrl: string | undefined;
    if (config.app.metrics.port !== null) {
      const metricsServer = await startMetricsServer(telemetry.metrics, config.app.metrics.port, logger);
      cleanups.push(() => metricsServer.close());
      metricsUrl = metricsServer.url;
    }

    print(`TME is running at ${server.url}`);
    if (metricsUrl) print(`metrics: ${metricsUrl}`);
    print(`database: ${target.description}`);
    if (adminKey) {
      print(`admin API key (shown once; also saved to ${path.join(config.dataDir, "admin-key")}):`);
      print(adminKey);
    }
    return {
      app,
      url: server.url,
      databaseDescription: target.description,
      adminKey,
      metricsUrl,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** The bootstrap key from the environment; on an empty database, a first admin key. */
async function provisionKeys(app: AppContext): Promise<string | undefined> {
  if (app.config.bootstrapApiKey) {
    const state = await ensureBootstrapKey(app.apiKeys, app.config.bootstrapApiKey);
    if (state === "revoked") {
      app.logger.warn(
        "TME_BOOTSTRAP_API_KEY names a key that was revoked: it stays revoked (set another value)",
      );
    }
  }
  if ((await app.apiKeys.countActive()) > 0) return undefined;
  const { key } = await createApiKey(app.apiKeys, {
    name: "admin",
    scopes: ["admin"],
    newId: () => newId("key"),
  });
  mkdirSync(app.config.dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(app.config.dataDir, "admin-key"), `${key}\n`, { mode: 0o600 });
  return key;
}
