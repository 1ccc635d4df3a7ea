import { sendWebhook } from "./adapters/http/webhook-sender.js";
import type { PluginRegistry } from "./adapters/plugins/plugin-registry.js";
import { postgresAlertStore } from "./adapters/postgres/alert-repository.js";
import { PostgresApiKeyStore } from "./adapters/postgres/api-keys-repository.js";
import {
  AuditAppender,
  BatchingAuditWriter,
  PostgresAuditReader,
} from "./adapters/postgres/audit-repository.js";
import {
  Database,
  type Db,
  isConnectionLoss,
  isStorageFailure,
  TransactionBoundDb,
} from "./adapters/postgres/database.js";
import { postgresDatabaseProbe } from "./adapters/postgres/database-probe.js";
import { postgresDeliveryStore } from "./adapters/postgres/delivery-repository.js";
import { queueSignalRouteFor } from "./adapters/postgres/event-writer.js";
import { PostgresHistoryPruner } from "./adapters/postgres/history-repository.js";
import { PostgresIdempotencyStore } from "./adapters/postgres/idempotency-repository.js";
import { PostgresOutboxStore } from "./adapters/postgres/outbox-repository.js";
import { PostgresScheduleStore } from "./adapters/postgres/schedule-repository.js";
import { PostgresTaskStatsReader } from "./adapters/postgres/stats-repository.js";
import { postgresSubscriptionStore } from "./adapters/postgres/subscription-repository.js";
import { PostgresTaskControlStore } from "./adapters/postgres/task-control-repository.js";
import { PostgresTaskQueue } from "./adapters/postgres/task-queue-repository.js";
import { PostgresTaskStore } from "./adapters/postgres/task-repository.js";
import { localEncryptionKey } from "./adapters/secrets/encryption-key.js";
import type { Config } from "./config/schema.js";
import type { AlertStore } from "./core/alerts/alert-store.js";
import type { AuditReader, AuditSink } from "./core/audit/audit.js";
import type { ApiKeyStore } from "./core/auth/api-keys.js";
import { type SecretBox, secretBox } from "./core/crypto/secret-box.js";
import type { DatabaseProbe } from "./core/health/health.js";
import type { IdempotencyStore } from "./core/idempotency/idempotency-store.js";
import { noObserver, type Observer } from "./core/observability/observer.js";
import type { OutboxStore } from "./core/outbox/outbox.js";
import type { PluginServices } from "./core/plugins/plugin.js";
import type { ScheduleStore } from "./core/schedules/schedule-store.js";
import type { TaskControlStore } from "./core/tasks/task-control-store.js";
import type { TaskStatsReader } from "./core/tasks/task-stats.js";
import type { TaskStore } from "./core/tasks/task-store.js";
import type { DeliveryStore } from "./core/webhooks/delivery-store.js";
import type { SubscriptionStore } from "./core/webhooks/subscription-store.js";
import type { WebhookSender } from "./core/webhooks/webhook-sender.js";
import type { Logger } from "./logging/logger.js";

/**
 * Everything a handler needs, built once per process: by the local runtime
 * (functions/local/runtime.ts) or at a Lambda's cold start (functions/cloud/runtime.ts).
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
  /**
   * Audit rows: batched when written outside a transaction; inside one (inTransaction) written
   * on it, so they commit with the change they record.
   */
  audit: AuditSink;
  /** GET /audit reads the chain through it. */
  auditLog: AuditReader;
  /** Idempotency-Key records; meaningful inside inTransaction, where its lock holds to the commit. */
  idempotency: IdempotencyStore;
  /** GET /stats. */
  taskStats: TaskStatsReader;
  /**
   * What a database failure means to a caller: "unavailable" (connection lost, refused) or
   * "storage_full" (disk full, read-only), both 503; undefined for any other error.
   */
  databaseFailureOf: (error: unknown) => "unavailable" | "storage_full" | undefined;
  tasks: TaskStore;
  /** The task API beyond create/get: control actions, lists, runs, events, task types. */
  taskControl: TaskControlStore;
  plugins: PluginRegistry;
  /** Seals webhook credentials and signing secrets for storage (AES-256-GCM). */
  secrets: SecretBox;
  schedules: ScheduleStore;
  subscriptions: SubscriptionStore;
  /** Webhook attempts (one row each) and the events kept for them. */
  deliveries: DeliveryStore;
  alerts: AlertStore;
  /** Makes one webhook attempt over the network (the guarded HTTP client). */
  sendWebhook: WebhookSender;
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
  /** GET /health asks it whether the database answers. */
  databaseProbe: DatabaseProbe;
  /** The rows the relays hand to the sinks (SQS, EventBridge, the local loops). */
  outbox: OutboxStore;
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
    auditLog: new PostgresAuditReader(db),
    idempotency: new PostgresIdempotencyStore(db),
    taskStats: new PostgresTaskStatsReader(db),
    subscriptions: postgresSubscriptionStore(db),
    deliveries: postgresDeliveryStore(db),
    alerts: postgresAlertStore(db),
    databaseProbe: postgresDatabaseProbe(db),
    outbox: new PostgresOutboxStore(db),
  } satisfies Partial<AppContext>;
}

/**
 * The same context with every database port on `db`: an Idempotency-Key request runs on a
 * TransactionBoundDb, and each store must join that transaction, not the pool.
 */
function withDb(app: AppContext, db: Db): AppContext {
  return { ...app, ...databasePorts(db, app.observer, app.config) };
}

/**
 * Runs `fn` in one transaction, on a context whose database ports and audit all join it (an
 * Idempotency-Key request: its change, its record and its audit row commit together or not at all).
 */
export function inTransaction<T>(app: AppContext, fn: (tx: AppContext) => Promise<T>): Promise<T> {
  return app.db.transaction((client) => {
    const bound = new TransactionBoundDb(client);
    return fn({ ...withDb(app, bound), audit: new AuditAppender(bound) });
  });
}

function databaseFailureOf(error: unknown): "unavailable" | "storage_full" | undefined {
  if (isStorageFailure(error)) return "storage_full";
  return isConnectionLoss(error) ? "unavailable" : undefined;
}

/** Wires the Postgres adapters; both runtimes and the tests build their context here. */
export function createAppContext(
  config: Config,
  db: Db,
  databaseUrl: string,
  logger: Logger,
  plugins: PluginRegistry,
  observer: Observer = noObserver,
  /** Where the secret box's key comes from: the cloud passes its Secrets Manager reader. */
  encryptionKey: () => Promise<Buffer> = () => localEncryptionKey(config.dataDir),
): AppContext {
  return {
    config,
    databaseUrl,
    logger,
    now: () => new Date(),
    ...databasePorts(db, observer, config),
    observer,
    audit: new BatchingAuditWriter(db),
    databaseFailureOf,
    sendWebhook,
    plugins,
    // The key is loaded on first use, so a process that never touches a secret needs none.
    secrets: secretBox(encryptionKey),
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
