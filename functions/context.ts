import type { PluginRegistry } from "./adapters/plugins/plugin-registry.js";
import { PostgresApiKeyStore } from "./adapters/postgres/api-keys-repository.js";
import { BatchingAuditWriter } from "./adapters/postgres/audit-repository.js";
import { Database, type Db } from "./adapters/postgres/database.js";
import { queueSignalRouteFor } from "./adapters/postgres/event-writer.js";
import { PostgresHistoryPruner } from "./adapters/postgres/history-repository.js";
import { PostgresScheduleStore } from "./adapters/postgres/schedule-repository.js";
import { PostgresTaskControlStore } from "./adapters/postgres/task-control-repository.js";
import { PostgresTaskQueue } from "./adapters/postgres/task-queue-repository.js";
import { PostgresTaskStore } from "./adapters/postgres/task-repository.js";
import { cloudEncryptionKey, localEncryptionKey } from "./adapters/secrets/encryption-key.js";
import type { Config } from "./config/schema.js";
import type { AuditSink } from "./core/audit/audit.js";
import type { ApiKeyStore } from "./core/auth/api-keys.js";
import { type SecretBox, secretBox } from "./core/crypto/secret-box.js";
import { noObserver, type Observer } from "./core/observability/observer.js";
import type { PluginServices } from "./core/plugins/plugin.js";
import type { ScheduleStore } from "./core/schedules/schedule-store.js";
import type { TaskControlStore } from "./core/tasks/task-control-store.js";
import type { TaskStore } from "./core/tasks/task-store.js";
import type { Logger } from "./logging/logger.js";

/**
 * Everything a handler needs, built once per process: by the local runtime
 * (functions/local/runtime.ts) or at a Lambda's cold start (functions/adapters/aws/cloud-context.ts).
 * Handlers receive it; they never build their own connections.
 */
export interface AppContext {
  config: Config;
  db: Db;
  /** For connections outside the pool (LISTEN). */
  databaseUrl: string;
  logger: Logger;
  /** Injected so rules that depend on time can be tested without sleeping. */
  now: () => Date;
  apiKeys: ApiKeyStore;
  /** Audit rows written outside a request's transaction, batched (inside one, see pipeline.ts). */
  audit: AuditSink;
  tasks: TaskStore;
  /** The task API beyond create/get: control actions, lists, runs, events, task types. */
  taskControl: TaskControlStore;
  plugins: PluginRegistry;
  /** Seals webhook credentials and signing secrets for storage (AES-256-GCM). */
  secrets: SecretBox;
  schedules: ScheduleStore;
  /** The queue the workers claim from and report to (Postgres in both runtimes). */
  taskQueue: PostgresTaskQueue;
  /** What plugins may use beyond their context (clean_logs prunes history through it). */
  pluginServices: PluginServices;
  /** How commands are kept from TME in this process (the local runtime decides it at start). */
  commandIsolation?: { kind: "sandbox" | "unprivileged_user" | "none"; detail: string };
  /** Locally, the embedded server's supervisor state ("recovering" while it restarts). */
  databaseState?: () => string;
  /** Why the database cannot write (disk full or read-only), while that lasts; else undefined. */
  storageProblem?: () => string | undefined;
  /** Metrics and traces of TME's own work; noObserver unless the runtime plugs one in. */
  observer: Observer;
  /** The Prometheus text of GET /metrics; the local runtime sets it, the cloud uses CloudWatch. */
  metrics?: MetricsScrape;
}

export interface MetricsScrape {
  scrape(): Promise<{ contentType: string; text: string }>;
}

/** The ports that talk to the database, built on one Db. */
function databasePorts(db: Db, observer: Observer, config: Config) {
  const queueSignals = queueSignalRouteFor(config.runtime);
  return {
    db,
    apiKeys: new PostgresApiKeyStore(db),
    tasks: new PostgresTaskStore(db, observer, { queueSignals }),
    taskControl: new PostgresTaskControlStore(db, queueSignals),
    schedules: new PostgresScheduleStore(db, observer),
  } satisfies Partial<AppContext>;
}

/**
 * The same context with every database port on `db`: an Idempotency-Key request runs on a
 * TransactionBoundDb, and each store must join that transaction, not the pool.
 */
export function withDb(app: AppContext, db: Db): AppContext {
  return { ...app, ...databasePorts(db, app.observer, app.config) };
}

/** Wires the Postgres adapters; both runtimes and the tests build their context here. */
export function createAppContext(
  config: Config,
  db: Db,
  databaseUrl: string,
  logger: Logger,
  plugins: PluginRegistry,
  observer: Observer = noObserver,
): AppContext {
  return {
    config,
    databaseUrl,
    logger,
    now: () => new Date(),
    ...databasePorts(db, observer, config),
    observer,
    audit: new BatchingAuditWriter(db),
    plugins,
    // The key is loaded on first use, so a process that never touches a secret needs none.
    secrets: secretBox(() =>
      config.runtime === "cloud" ? cloudEncryptionKey() : localEncryptionKey(config.dataDir),
    ),
    taskQueue: new PostgresTaskQueue(db, {
      limitOf: (name) => plugins.concurrencyOf(name),
      leaseSeconds: config.app.worker.lease_seconds,
      outputTailBytes: config.app.shell.output_tail_bytes,
      maxInfraRetries: config.app.worker.max_infra_retries,
      queueSignals: queueSignalRouteFor(config.runtime),
    }),
    pluginServices: { history: new PostgresHistoryPruner(db) },
    storageProblem: db instanceof Database ? () => db.storageProblem() : undefined,
  };
}
