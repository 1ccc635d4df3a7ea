import type { Db } from "./adapters/postgres/database.js";
import type { Config } from "./config/schema.js";
import type { ApiKeyStore } from "./core/auth/api-keys.js";
import type { Logger } from "./logging/logger.js";

/**
 * Everything a handler needs, built once per process: by the local runtime
 * (functions/local/runtime.ts) or at a Lambda's cold start (functions/adapters/aws/cloud-context.ts).
 * Handlers receive it; they never build their own connections.
 */
export interface AppContext {
  config: Config;
  db: Db;
  logger: Logger;
  /** Injected so rules that depend on time can be tested without sleeping. */
  now: () => Date;
  apiKeys: ApiKeyStore;
}
