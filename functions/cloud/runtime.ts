import { databaseOptions } from "../adapters/aws/cloud-database.js";
import { LambdaObserver } from "../adapters/aws/lambda-observer.js";
import { invocationLogFields, lambdaTelemetry } from "../adapters/aws/lambda-telemetry.js";
import { PluginRegistry } from "../adapters/plugins/plugin-registry.js";
import { Database } from "../adapters/postgres/database.js";
import { cloudEncryptionKey } from "../adapters/secrets/cloud-encryption-key.js";
import { loadCloudEnvironment, type TmeFunctionName } from "../config/cloud-environment.js";
import { loadConfig } from "../config/load.js";
import { type AppContext, createAppContext } from "../context.js";
import { createLogger } from "../logging/logger.js";

/*
 * The cloud runtime's composition, as functions/local/runtime.ts is the local one's: it builds
 * the AppContext of a Lambda container from the adapters (which never import the context).
 */

type Env = Record<string, string | undefined>;

/**
 * The shell plugin runs nothing in the cloud unless the stack was deployed with enableShell:
 * a command runs beside the Lambda's own credentials (its environment and /proc).
 */
export function cloudShell(
  shell: AppContext["config"]["app"]["shell"],
  env: Env,
): AppContext["config"]["app"]["shell"] {
  return env.SHELL_ENABLED === "true" ? shell : { ...shell, allowed_commands: [] };
}

/**
 * Built once per Lambda container, at cold start, and reused by every invocation. The
 * environment is checked against the contract the stack was built from first, so a missing
 * variable is one clear line in the function's log, not a failure deep in some request.
 */
export async function cloudContext(
  fn: TmeFunctionName,
  env: Record<string, string | undefined> = process.env,
): Promise<AppContext> {
  loadCloudEnvironment(fn, env);
  const config = loadConfig({ env: { ...env, TME_RUNTIME: "cloud" } });
  // Every line carries the invocation's request id, cold start and X-Ray trace id.
  const logger = createLogger(config.app.LOG_LEVEL, undefined, { fields: invocationLogFields });
  config.app.shell = cloudShell(config.app.shell, env);
  const { options, url } = await databaseOptions(env);
  const db = new Database({
    ...options,
    // One Lambda handles one event at a time; a small pool behind RDS Proxy is plenty.
    max: 2,
    // RDS Proxy pins a session that prepares a statement to its server connection.
    preparedStatements: false,
    connectionTimeoutMillis: config.db.pool.connection_timeout_ms,
  });
  const observer = new LambdaObserver(lambdaTelemetry(fn));
  return createAppContext(config, db, url, logger, await PluginRegistry.load(config.plugins), observer, () =>
    cloudEncryptionKey(env),
  );
}

/**
 * A Lambda entry's per-container setup: built from the cloud context on the first invocation
 * and reused by the next ones. A setup that failed (Secrets Manager or the database briefly
 * unreachable) is tried again by the next invocation instead of failing every invocation until
 * the container is recycled.
 */
export function coldStart<T>(
  fn: TmeFunctionName,
  build: (app: AppContext) => T,
  context: (fn: TmeFunctionName) => Promise<AppContext> = cloudContext,
): () => Promise<T> {
  let setup: Promise<T> | undefined;
  return () => {
    setup ??= context(fn)
      .then(build)
      .catch((error: unknown) => {
        setup = undefined;
        throw error;
      });
    return setup;
  };
}
