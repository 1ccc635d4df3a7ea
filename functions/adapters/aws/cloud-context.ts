import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { loadCloudEnvironment, type TmeFunctionName } from "../../config/cloud-environment.js";
import { loadConfig } from "../../config/load.js";
import { type AppContext, createAppContext } from "../../context.js";
import { createLogger } from "../../logging/logger.js";
import { PluginRegistry } from "../plugins/plugin-registry.js";
import { Database } from "../postgres/database.js";

interface DatabaseSecret {
  username: string;
  password: string;
  host?: string;
  port?: number;
  dbname?: string;
}

/** The database URL in the cloud: credentials from Secrets Manager, host from the RDS Proxy. */
export async function cloudDatabaseUrl(
  env: Record<string, string | undefined> = process.env,
  secrets = new SecretsManagerClient({}),
): Promise<string> {
  if (env.DATABASE_URL) return env.DATABASE_URL;
  const secretArn = env.DATABASE_SECRET_ARN;
  if (!secretArn)
    throw new Error("environment variable DATABASE_SECRET_ARN (or DATABASE_URL) is required in the cloud");
  const output = await secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const secret = JSON.parse(output.SecretString ?? "{}") as DatabaseSecret;
  const host = env.DATABASE_HOST ?? secret.host;
  const port = env.DATABASE_PORT ?? secret.port ?? 5432;
  const database = env.DATABASE_NAME ?? secret.dbname ?? "tme";
  return `postgres://${encodeURIComponent(secret.username)}:${encodeURIComponent(secret.password)}@${host}:${port}/${database}?sslmode=no-verify`;
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
  const logger = createLogger(config.app.LOG_LEVEL);
  const databaseUrl = await cloudDatabaseUrl(env);
  const db = new Database({
    connectionString: databaseUrl,
    // One Lambda handles one event at a time; a small pool behind RDS Proxy is plenty.
    max: 2,
    connectionTimeoutMillis: config.db.pool.connection_timeout_ms,
  });
  return createAppContext(config, db, databaseUrl, logger, await PluginRegistry.load(config.plugins));
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
