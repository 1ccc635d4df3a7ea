import * as z from "zod";

/** The shape of configurations/app_config.yaml. Strict: an unknown key is an error. */
export const LogLevel = z.enum(["DEBUG", "INFO", "WARN", "ERROR"]);
export type LogLevel = z.infer<typeof LogLevel>;

const seconds = z.number().int().positive();

/** A section of a configuration file: strict (an unknown key is an error), all defaults when absent. */
function section<Shape extends z.ZodRawShape>(shape: Shape) {
  return z.strictObject(shape).prefault({} as never);
}

export const AppConfigSchema = z
  .object({
    /** Capped by max_task_timeout when a task omits timeout_seconds (the cloud lowers the cap). */
    default_task_timeout: seconds.default(3600),
    max_task_timeout: seconds.default(86400),
    default_max_attempts: z.number().int().min(1).max(100).default(3),
    event_notification_format: z.enum(["json", "xml"]).default("json"),
    MAX_CONCURRENT_TASKS: z.number().int().min(1).max(1000).default(4),
    LOG_LEVEL: LogLevel.default("INFO"),
    allow_private_callbacks: z.boolean().default(false),
    port: z.number().int().min(0).max(65535).default(8000),
    host: z.string().min(1).default("127.0.0.1"),
    retry: section({
      base_delay_seconds: z.number().positive().default(2),
      max_delay_seconds: z.number().positive().default(600),
    }),
    worker: z
      .object({
        lease_seconds: seconds.default(30),
        heartbeat_seconds: seconds.default(10),
        poll_interval_ms: z.number().int().min(10).default(1000),
        kill_grace_seconds: z.number().positive().default(1),
        /** SIGTERM: running attempts get this long to finish before they are handed back. */
        shutdown_grace_seconds: z.number().min(0).default(30),
        /** Runs of one task lost to infrastructure before it fails anyway (a task that kills its worker). */
        max_infra_retries: z.number().int().min(0).default(5),
        /**
         * A process sharing a server database registers in `workers` and beats this often; one
         * silent for presence_timeout_seconds is taken for dead and its running tasks are taken
         * back at once (its own commands stop before that, on its own clock).
         */
        presence_heartbeat_seconds: seconds.default(2),
        presence_timeout_seconds: seconds.default(10),
        /**
         * Claimed tasks a process may hold ahead of its free slots when tasks are short (the
         * local queue; 0: claim only for free slots). See docs/engine.md.
         */
        local_queue_size: z.number().int().min(0).max(10_000).default(500),
      })
      .strict()
      .superRefine((worker, ctx) => {
        if (
          worker.presence_timeout_seconds <=
          worker.presence_heartbeat_seconds + worker.kill_grace_seconds + 1
        )
          ctx.addIssue({
            code: "custom",
            path: ["presence_timeout_seconds"],
            message: `must exceed presence_heartbeat_seconds + kill_grace_seconds + 1 (${worker.presence_heartbeat_seconds + worker.kill_grace_seconds + 1})`,
          });
        // A worker stops its attempt kill_grace + 1 s before its lease ends unless a heartbeat
        // renewed it; a lease shorter than that plus one heartbeat would stop every attempt.
        if (worker.lease_seconds <= worker.heartbeat_seconds + worker.kill_grace_seconds + 1)
          ctx.addIssue({
            code: "custom",
            path: ["lease_seconds"],
            message: `must exceed heartbeat_seconds + kill_grace_seconds + 1 (${worker.heartbeat_seconds + worker.kill_grace_seconds + 1})`,
          });
      })
      .prefault({}),
    shell: section({
      allow_shell: z.boolean().default(false),
      allowed_commands: z.array(z.string().min(1)).default(["*"]),
      env_allowlist: z.array(z.string().min(1)).default(["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"]),
      output_tail_bytes: z.number().int().min(1024).default(65536),
      /**
       * How commands are kept from TME (plugins/shell-sandbox.ts). auto: in a bubblewrap sandbox
       * where bubblewrap works, else as an unprivileged uid when TME is root, else as TME's own
       * user (with a warning at start); required: bubblewrap or no start; none: TME's own user.
       */
      sandbox: z.enum(["auto", "required", "none"]).default("auto"),
      /** The sandbox's network: allow (the host's) or none (its own, loopback only). */
      network: z.enum(["allow", "none"]).default("allow"),
      bwrap_path: z.string().startsWith("/").default("/usr/bin/bwrap"),
      /** Host paths a sandboxed command may read (e.g. /opt/jobs), at the same path inside. */
      sandbox_read_only: z.array(z.string().startsWith("/")).default([]),
      /** Host paths a sandboxed command may write; they must be writable by uid 65534 when TME is root. */
      sandbox_read_write: z.array(z.string().startsWith("/")).default([]),
    }),
    retention: section({
      task_events_days: z.number().positive().default(30),
      task_runs_days: z.number().positive().default(30),
      deliveries_days: z.number().positive().default(30),
    }),
    webhooks: section({
      timeout_seconds: z.number().positive().max(60).default(10),
      max_response_bytes: z.number().int().positive().default(65536),
      give_up_after_hours: z.number().positive().default(24),
      per_endpoint_concurrency: z.number().int().min(1).default(2),
      retry_base_seconds: z.number().positive().default(5),
      secret_rotation_grace_hours: z.number().min(0).default(24),
      max_in_flight: z.number().int().min(1).max(1000).default(64),
    }),
    metrics: section({
      /** GET /metrics on the API port, for keys with the metrics:read scope (or admin). */
      api: z.boolean().default(true),
      /** A second listener on 127.0.0.1:port serving only /metrics, without a key; null: none. */
      port: z.number().int().min(0).max(65535).nullable().default(null),
      /** Task names (and namespaces) get their own label up to this many; the rest count as "other". */
      max_task_names: z.number().int().min(1).max(10000).default(100),
      max_namespaces: z.number().int().min(1).max(10000).default(50),
      /** Scrapes within this long share one database read of the gauges. */
      gauge_cache_ms: z.number().int().min(0).max(60000).default(1000),
    }),
    security: section({
      /** Refused authentications a source address may make per minute before 429s. */
      auth_failures_per_minute: z.number().int().min(1).default(20),
      /** Per-key token bucket: requests per second refilled, and the bucket's size (0: off). */
      key_requests_per_second: z.number().min(0).default(2000),
      key_burst: z.number().int().min(1).default(4000),
      /** The local HTTP edge (API Gateway has its own limits in the cloud). */
      max_connections: z.number().int().min(1).default(512),
      max_connections_per_source: z.number().int().min(1).default(64),
      header_timeout_seconds: z.number().positive().default(10),
      body_timeout_seconds: z.number().positive().default(30),
      /** Audit rows older than this are archived to a file by `tme audit archive` (0: never). */
      audit_retention_days: z.number().int().min(0).default(0),
    }),
    alerts: section({
      task_failed: z.boolean().default(true),
      task_running_longer_than_seconds: z.number().int().min(0).default(0),
      task_queued_longer_than_seconds: z.number().int().min(0).default(0),
      queue_backlog_age_seconds: z.number().int().min(0).default(0),
      schedule_missed: z.boolean().default(true),
      endpoint_failing_hours: z.number().positive().default(24),
      deliveries_given_up: z.boolean().default(true),
      evaluate_every_seconds: z.number().positive().default(15),
      schedule_missed_grace_seconds: z.number().int().min(0).default(60),
    }),
  })
  .strict();
export type AppConfig = z.infer<typeof AppConfigSchema>;

export const DbConfigSchema = z
  .object({
    embedded: z.boolean().default(true),
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(1).max(65535).default(5432),
    database: z.string().min(1).default("tme"),
    user: z.string().min(1).default("postgres"),
    password: z.string().default(""),
    ssl: z.boolean().default(false),
    /**
     * Prepare statements once per connection (faster; see Database). Off behind a pooler that
     * hands one session's statements to different server connections (PgBouncer in
     * transaction mode before 1.21, RDS Proxy): they would fail with 26000 or pin sessions.
     */
    prepared_statements: z.boolean().default(true),
    pool: section({
      max: z.number().int().min(1).max(500).default(10),
      idle_timeout_ms: z.number().int().min(0).default(30000),
      connection_timeout_ms: z.number().int().min(100).default(5000),
    }),
  })
  .strict();
export type DbConfig = z.infer<typeof DbConfigSchema>;

export const PluginMappingSchema = z
  .object({
    plugin: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, "must be a module name in plugins/ (letters, digits, _ or -)"),
    export: z.string().min(1).default("handler"),
    concurrency: z.number().int().min(1).optional(),
  })
  .strict();
export type PluginMapping = z.infer<typeof PluginMappingSchema>;

export const TaskPluginsSchema = z
  .object({
    tasks: z.record(z.string().min(1), PluginMappingSchema).default({}),
  })
  .strict();
export type TaskPluginsConfig = z.infer<typeof TaskPluginsSchema>;

/** What the rest of TME reads: the three files merged with the environment. */
export interface Config {
  app: AppConfig;
  db: DbConfig;
  plugins: TaskPluginsConfig;
  /** Directory of the three YAML files. */
  configDir: string;
  /** Where the local runtime keeps its embedded database and the admin key. */
  dataDir: string;
  /** postgres://... when DATABASE_URL is set; overrides the db file's server settings. */
  databaseUrl: string | undefined;
  bootstrapApiKey: string | undefined;
  runtime: "local" | "cloud";
}
