import { Command, Option } from "commander";
import { PluginConfigError } from "../adapters/plugins/plugin-registry.js";
import { PostgresApiKeyStore } from "../adapters/postgres/api-keys-repository.js";
import { archiveAudit, verifyAudit } from "../adapters/postgres/audit-repository.js";
import { Database } from "../adapters/postgres/database.js";
import { migrate } from "../adapters/postgres/migrator.js";
import { ConfigError, loadConfig } from "../config/load.js";
import {
  createApiKey,
  isValidNamespace,
  NAMESPACE_RULE,
  parseScopes,
  SCOPES,
} from "../core/auth/api-keys.js";
import { newId } from "../core/ids.js";
import { ensureDashboardBuilt } from "../dashboard/build.js";
import { DataDirUnusable } from "../local/data-dir.js";
import { DatabaseUnreachable, openDatabaseTarget } from "../local/database-target.js";
import { type RunningTme, startLocalRuntime } from "../local/runtime.js";
import { createLogger } from "../logging/logger.js";

/** Expected failures end in one line on stderr and exit code 1; nothing else is a stack trace. */
function fail(error: unknown): never {
  const known =
    error instanceof ConfigError ||
    error instanceof DatabaseUnreachable ||
    error instanceof DataDirUnusable ||
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
    // A fresh clone or an edited functions/dashboard/src: build the page /dashboard serves. Without
    // Vite (an install without dev dependencies) TME runs on and /dashboard answers 404.
    await ensureDashboardBuilt().then(
      (built) => built && logger.info("built the dashboard (functions/dashboard/dist)"),
      (error) => logger.warn({ err: error }, "could not build the dashboard: /dashboard answers 404"),
    );
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

/** Runs fn on a one-connection pool of the configured (migrated) database. */
function withDb<T>(fn: (db: Database) => Promise<T>): Promise<T> {
  return withDatabase(async (url) => {
    await migrate(url);
    const db = new Database({ connectionString: url, max: 1 });
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  });
}

const keys = program.command("keys").description("manage API keys");
keys
  .command("create")
  .description("create an API key; the key is printed once, as the last line of stdout")
  .requiredOption("--name <name>", "a name to recognise the key by")
  .addOption(new Option("--scopes <list>", `comma list of ${SCOPES.join(", ")}`).makeOptionMandatory())
  .option("--namespace <namespace>", "the namespace the key acts in", "default")
  .option("--expires-in-days <days>", "the key is refused after this many days")
  .action(async (options: { name: string; scopes: string; namespace: string; expiresInDays?: string }) => {
    const scopes = parseScopes(options.scopes);
    if (!isValidNamespace(options.namespace)) throw new Error(`--namespace: use ${NAMESPACE_RULE}`);
    let expiresAt: Date | null = null;
    if (options.expiresInDays !== undefined) {
      const days = Number(options.expiresInDays);
      if (!Number.isFinite(days) || days <= 0)
        throw new Error("--expires-in-days: a positive number of days");
      expiresAt = new Date(Date.now() + days * 86_400_000);
    }
    const created = await withDb((db) =>
      createApiKey(new PostgresApiKeyStore(db), {
        name: options.name,
        scopes,
        namespace: options.namespace,
        expiresAt,
        newId: () => newId("key"),
      }),
    );
    process.stdout.write(
      `created key ${created.id} (${options.name}, scopes ${scopes.join(",")}, namespace ${options.namespace}${
        expiresAt ? `, expires ${expiresAt.toISOString()}` : ""
      })\n`,
    );
    process.stdout.write(`${created.key}\n`);
  });

keys
  .command("list")
  .description("list API keys (never the keys themselves), newest first")
  .option("--json", "one JSON object per line")
  .action(async (options: { json?: boolean }) => {
    const all = await withDb(async (db) => {
      const store = new PostgresApiKeyStore(db);
      const rows = [];
      let after: { micros: number; id: string } | undefined;
      do {
        const page = await store.list({ limit: 500, after });
        rows.push(...page.keys);
        after = page.next;
      } while (after);
      return rows;
    });
    const now = new Date();
    const status = (k: (typeof all)[number]) =>
      k.revoked_at ? "revoked" : k.expires_at && k.expires_at <= now ? "expired" : "active";
    for (const k of all) {
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ ...k, status: status(k) })}\n`);
        continue;
      }
      const used = k.last_used_at ? k.last_used_at.toISOString() : "never";
      process.stdout.write(
        `${k.id}\t${status(k)}\t${k.namespace}\t${k.scopes.join(",")}\t${k.name}\tprefix ${k.prefix}\tlast used ${used}${
          k.expires_at ? `\texpires ${k.expires_at.toISOString()}` : ""
        }\n`,
      );
    }
  });

keys
  .command("revoke")
  .description("revoke an API key: refused from the next request on, in every TME process")
  .argument("<key_id>", "the key's id (tme keys list)")
  .action(async (keyId: string) => {
    const revoked = await withDb((db) => new PostgresApiKeyStore(db).revoke(keyId));
    if (!revoked) throw new Error(`no API key ${keyId}`);
    process.stdout.write(`revoked key ${keyId}\n`);
  });

const audit = program.command("audit").description("the hash-chained audit log");
audit
  .command("verify")
  .description("recompute the audit chain; exit code 1 naming the first broken row")
  .action(async () => {
    const result = await withDb((db) => verifyAudit(db));
    if (result.ok) {
      process.stdout.write(
        `audit chain ok: ${result.checked} row(s) verified (seq ${result.fromSeq}..${result.headSeq})\n`,
      );
      return;
    }
    const broken = result.broken!;
    process.stdout.write(
      `audit chain BROKEN at row seq ${broken.seq}${broken.id ? ` (id ${broken.id})` : ""}: ${broken.reason}\n`,
    );
    process.exitCode = 1;
  });
audit
  .command("archive")
  .description("retention: move rows older than N days to a JSON Lines file, keeping the chain verifiable")
  .option("--older-than-days <days>", "default: security.audit_retention_days of app_config.yaml")
  .requiredOption("--out <file>", "the archive file to write (must not exist)")
  .action(async (options: { olderThanDays?: string; out: string }) => {
    const days = Number(options.olderThanDays ?? loadConfig().app.security.audit_retention_days);
    if (!Number.isFinite(days) || days <= 0) {
      throw new Error("--older-than-days: a positive number (or set security.audit_retention_days)");
    }
    const result = await withDb((db) =>
      archiveAudit(db, new Date(Date.now() - days * 86_400_000), options.out),
    );
    process.stdout.write(
      result
        ? `archived ${result.archived} row(s) through seq ${result.throughSeq} to ${result.file} (sha256 ${result.sha256})\n`
        : "nothing to archive\n",
    );
  });

program
  .command("bench")
  .description(
    "benchmarks, side by side on one PostgreSQL: queue drain, pickup latency and API against graphile-worker, pg-boss and bare handlers (docs/benchmarks.md)",
  )
  .option("--quick", "a smoke of about a minute: fewer tasks, one repeat (written as quick.*)")
  .option("--tasks <n>", "tasks per drain run (default 5000; quick 1000)")
  .option("--repeats <n>", "repeats; the table compares medians (default 3; quick 1)")
  .option("--concurrency <list>", "drain concurrencies, comma list (default 24,64)")
  .option("--pickup-tasks <n>", "tasks of the pickup-latency run (default 500; quick 100)")
  .option("--pickup-rate <n>", "tasks per second created in the pickup run (default 100)")
  .option("--api-seconds <n>", "seconds of load per API route and system (default 5; quick 2)")
  .option(
    "--drain-cap-seconds <n>",
    "a drain still running then is stopped and rated on what finished (default 8)",
  )
  .option(
    "--listing-backlog <n>",
    "queued tasks behind a busy slot while GET /tasks?limit=50 is timed (default 100000; quick 20000)",
  )
  .option(
    "--database-url <url>",
    "superuser URL of the server (default 127.0.0.1:5432 if it answers, else embedded)",
  )
  .option("--out <dir>", "where the JSON, SVG and table go (default bench/results)")
  .option("--no-progress", "no progress line")
  .action(async (options: Record<string, string | boolean | undefined>, command: Command) => {
    // The harness and its peers (graphile-worker, pg-boss, autocannon) are devDependencies:
    // a checkout with `npm ci` has them, a production install does not.
    let bench: typeof import("../../test/bench/main.js");
    try {
      bench = await import("../../test/bench/main.js");
    } catch (error) {
      throw new Error(
        `the benchmark needs a checkout with its devDependencies (npm ci): ${(error as Error).message}`,
      );
    }
    const argv = process.argv.slice(process.argv.indexOf(command.name()) + 1);
    await bench.benchCommand(options, argv);
  });

program.parseAsync(process.argv).catch(fail);
