import type { PluginRegistry } from "./adapters/plugins/plugin-registry.js";
import { PostgresApiKeyStore } from "./adapters/postgres/api-keys-repository.js";
import type { Db } from "./adapters/postgres/database.js";
import { PostgresTaskStore } from "./adapters/postgres/task-repository.js";
import type { Config } from "./config/schema.js";
import type { ApiKeyStore } from "./core/auth/api-keys.js";
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
  tasks: TaskStore;
  plugins: PluginRegistry;
}

/** Wires the Postgres adapters; both runtimes and the tests build their context here. */
export function createAppContext(
  config: Config,
  db: Db,
  databaseUrl: string,
  logger: Logger,
  plugins: PluginRegistry,
): AppContext {
  return {
    config,
    db,
    databaseUrl,
    logger,
    now: () => new Date(),
    apiKeys: new PostgresApiKeyStore(db),
    tasks: new PostgresTaskStore(db),
    plugins,
  };
}
