import { Command, Option } from "commander";
import { PluginConfigError } from "../adapters/plugins/plugin-registry.js";
import { PostgresApiKeyStore } from "../adapters/postgres/api-keys-repository.js";
import { Database } from "../adapters/postgres/database.js";
import { migrate } from "../adapters/postgres/migrator.js";
import { ConfigError, loadConfig } from "../config/load.js";
import { createApiKey, parseScopes } from "../core/auth/api-keys.js";
import { newId } from "../core/ids.js";
import { DatabaseUnreachable, openDatabaseTarget } from "../local/database-target.js";
import { type RunningTme, startLocalRuntime } from "../local/runtime.js";
import { createLogger } from "../logging/logger.js";

/** Expected failures end in one line on stderr and exit code 1; nothing else is a stack trace. */
function fail(error: unknown): never {
  const known =
    error instanceof ConfigError ||
    error instanceof DatabaseUnreachable ||
    error instanceof PluginConfigError;
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`tme: ${known ? "" : "error: "}${message}\n`);
  if (!known && process.env.LOG_LEVEL?.toUpperCase() === "DEBUG" && error instanceof Error) {
    process.stderr.write(`${error.stack}\n`);
  }
  process.exit(1);
}

/** Runs fn against the configured database (starting the embedded one if that is the choice). */
async function withDatabase<T>(fn: (connectionString: string) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const logger = createLogger(config.app.LOG_LEVEL);
  const target = await openDatabaseTarget(config, (message) => logger.info(message), { shareRunning: true });
  try {
    return await fn(target.connectionString);
  } finally {
    await target.stop();
  }
}

/**
 * Under `npm start` TME runs below npm (and the shell npm starts scripts with). A SIGTERM to
 * npm's pid (Docker, systemd, a supervisor) can end npm or that shell without reaching TME,
 * which then lives on as an orphan holding the data directory; so TME stops when its parent
 * goes away. Only under npm: `tme start &` from a shell that then exits keeps running.
 */
function watchParent(onGone: () => void): void {
  if (!process.env.npm_lifecycle_event) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      onGone();
    }
  }, 500);
  timer.unref();
}

const program = new Command()
  .name("tme")
  .description("TME, the Task Management Engine")
  .showHelpAfterError()
  .configureOutput({ outputError: (text, write) => write(text) });

program
  .command("start")
  .description("migrate, then run the HTTP API and the workers in this process")
  .action(async () => {
    const config = loadConfig();
    const logger = createLogger(config.app.LOG_LEVEL);
    // Handlers first: a signal during start-up (initdb, migrations) waits for the start to
    // finish and then stops cleanly, instead of killing TME and orphaning its database server.
    let running: RunningTme | undefined;
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) {
        process.stderr.write("tme: second signal, exiting now\n");
        process.exit(130);
      }
      stopping = true;
      logger.info({ signal }, "shutting down");
      if (!running) return;
      await running.stop();
      logger.info("stopped");
      process.exit(0);
    };
    process.on("SIGINT", () => void shutdown("SIGINT"));
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    // A server keeps serving through a bug in one code path; the error is logged, not fatal.
    process.on("unhandledRejection", (error) => logger.error({ err: error }, "unhandled rejection"));
    watchParent(() => void shutdown("parent exited"));
    running = await startLocalRuntime({
      config,
      logger,
      onFatal: (message) => {
        process.stderr.write(`tme: ${message}\n`);
        process.exit(1);
      },
    });
    if (stopping) {
      await running.stop();
      logger.info("stopped");
      process.exit(0);
    }
  });

program
  .command("migrate")
  .description("apply pending database migrations (safe to run twice, or from two processes at once)")
  .action(async () => {
    const result = await withDatabase((url) => migrate(url));
    process.stdout.write(
      result.applied.length > 0
        ? `applied ${result.applied.length} migration(s): ${result.applied.join(", ")}\n`
        : `database is up to date (${result.alreadyApplied} migration(s) applied earlier)\n`,
    );
  });

const keys = program.command("keys").description("manage API keys");
keys
  .command("create")
  .description("create an API key; the key is printed once, as the last line of stdout")
  .requiredOption("--name <name>", "a name to recognise the key by")
  .addOption(
    new Option(
      "--scopes <list>",
      "comma list of tasks:read, tasks:write, schedules:write, events:write, admin",
    ).makeOptionMandatory(),
  )
  .option("--namespace <namespace>", "the namespace the key acts in", "default")
  .action(async (options: { name: string; scopes: string; namespace: string }) => {
    const scopes = parseScopes(options.scopes);
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(options.namespace)) {
      throw new Error("--namespace: use 1-63 lowercase letters, digits, _ or -");
    }
    const created = await withDatabase(async (url) => {
      await migrate(url);
      const db = new Database({ connectionString: url, max: 1 });
      try {
        return await createApiKey(new PostgresApiKeyStore(db), {
          name: options.name,
          scopes,
          namespace: options.namespace,
          newId: () => newId("key"),
        });
      } finally {
        await db.close();
      }
    });
    process.stdout.write(
      `created key ${created.id} (${options.name}, scopes ${scopes.join(",")}, namespace ${options.namespace})\n`,
    );
    process.stdout.write(`${created.key}\n`);
  });

program
  .command("bench")
  .description("benchmarks (arrive with the benchmark issue)")
  .action(() => {
    process.stdout.write(
      "No benchmarks yet: the benchmark suite (queue throughput and API latency, as ratios against a baseline run side by side) is planned but not built.\n",
    );
  });

program.parseAsync(process.argv).catch(fail);
