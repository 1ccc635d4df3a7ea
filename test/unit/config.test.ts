import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactUrl } from "../../functions/config/load.js";

function configDir(files: { app?: string; db?: string; plugins?: string }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tme-config-"));
  if (files.app !== undefined) writeFileSync(path.join(dir, "app_config.yaml"), files.app);
  if (files.db !== undefined) writeFileSync(path.join(dir, "db_config.yaml"), files.db);
  if (files.plugins !== undefined) writeFileSync(path.join(dir, "task_plugins.yaml"), files.plugins);
  return dir;
}

function errorOf(files: Parameters<typeof configDir>[0], env: Record<string, string> = {}): string {
  const dir = configDir(files);
  try {
    loadConfig({ configDir: dir, env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).not.toContain("\n");
    return message.replace(dir, "<dir>");
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("loads the shipped configuration files with their documented defaults", () => {
    const config = loadConfig({ configDir: "configurations", env: {} });
    expect(config.app).toMatchObject({
      default_task_timeout: 3600,
      max_task_timeout: 86400,
      event_notification_format: "json",
      MAX_CONCURRENT_TASKS: 4,
      LOG_LEVEL: "INFO",
      allow_private_callbacks: false,
      port: 8000,
    });
    expect(config.db.embedded).toBe(true);
    expect(config.plugins.tasks["sleep*"]).toEqual({ plugin: "sleep", export: "handler" });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.dataDir).toBe(path.resolve(".tme"));
  });

  it("fills every default when the files are absent", () => {
    const config = loadConfig({ configDir: configDir({}), env: {} });
    expect(config.app.shell.output_tail_bytes).toBe(65536);
    expect(config.db.pool.max).toBe(10);
    expect(config.plugins.tasks).toEqual({});
  });

  it("lets environment variables override the files", () => {
    const config = loadConfig({
      configDir: "configurations",
      env: {
        DATABASE_URL: "postgres://u:pw@db.example:6543/x",
        DATABASE_PASSWORD: "s3cret",
        MAX_CONCURRENT_TASKS: "12",
        LOG_LEVEL: "debug",
        PORT: "9123",
        TME_DATA_DIR: "/var/lib/tme",
        TME_BOOTSTRAP_API_KEY: "0123456789abcdef0123456789abcdef",
        ALLOW_PRIVATE_CALLBACKS: "true",
      },
    });
    expect(config.databaseUrl).toBe("postgres://u:pw@db.example:6543/x");
    expect(config.db.password).toBe("s3cret");
    expect(config.app.MAX_CONCURRENT_TASKS).toBe(12);
    expect(config.app.LOG_LEVEL).toBe("DEBUG");
    expect(config.app.port).toBe(9123);
    expect(config.dataDir).toBe("/var/lib/tme");
    expect(config.bootstrapApiKey).toBe("0123456789abcdef0123456789abcdef");
    expect(config.app.allow_private_callbacks).toBe(true);
  });

  it("names the file, the misspelt key and the allowed keys", () => {
    expect(errorOf({ app: "defualt_task_timeout: 10\n" })).toMatch(
      /^<dir>\/app_config\.yaml: unknown key "defualt_task_timeout"; allowed keys: default_task_timeout, max_task_timeout, .*LOG_LEVEL/,
    );
    expect(errorOf({ db: "embeded: true\n" })).toMatch(
      /^<dir>\/db_config\.yaml: unknown key "embeded"; allowed keys: embedded, host,/,
    );
    expect(errorOf({ plugins: "task:\n  x: {plugin: y}\n" })).toBe(
      '<dir>/task_plugins.yaml: unknown key "task"; allowed keys: tasks',
    );
    expect(errorOf({ plugins: "tasks:\n  x: {plugin: noop, concurency: 2}\n" })).toBe(
      '<dir>/task_plugins.yaml: unknown key "tasks.x.concurency"; allowed keys: plugin, export, concurrency',
    );
    expect(errorOf({ app: "shell:\n  allow_shel: true\n" })).toMatch(
      /unknown key "shell.allow_shel"; allowed keys: allow_shell,/,
    );
  });

  it("names the key, the bad value and what is allowed", () => {
    expect(errorOf({ app: "LOG_LEVEL: VERBOSE\n" })).toBe(
      '<dir>/app_config.yaml: key "LOG_LEVEL" has value "VERBOSE": allowed: DEBUG, INFO, WARN, ERROR',
    );
    expect(errorOf({ app: "event_notification_format: yaml\n" })).toBe(
      '<dir>/app_config.yaml: key "event_notification_format" has value "yaml": allowed: json, xml',
    );
    expect(errorOf({ app: "MAX_CONCURRENT_TASKS: 0\n" })).toBe(
      '<dir>/app_config.yaml: key "MAX_CONCURRENT_TASKS" has value 0: must be >=1',
    );
    expect(errorOf({ app: "allow_private_callbacks: maybe\n" })).toBe(
      '<dir>/app_config.yaml: key "allow_private_callbacks" has value "maybe": expected boolean',
    );
    expect(errorOf({ db: "port: 70000\n" })).toBe(
      '<dir>/db_config.yaml: key "port" has value 70000: must be <=65535',
    );
    expect(errorOf({ db: "embedded: yes please\n" })).toBe(
      '<dir>/db_config.yaml: key "embedded" has value "yes please": expected boolean',
    );
    expect(errorOf({ plugins: "tasks:\n  x: {plugin: ../evil}\n" })).toBe(
      '<dir>/task_plugins.yaml: key "tasks.x.plugin" has value "../evil": must be a module name in plugins/ (letters, digits, _ or -)',
    );
  });

  it("names the environment variable when the bad value came from it", () => {
    expect(errorOf({}, { LOG_LEVEL: "loud" })).toBe(
      'environment variable LOG_LEVEL: key "LOG_LEVEL" has value "LOUD": allowed: DEBUG, INFO, WARN, ERROR',
    );
    expect(errorOf({}, { MAX_CONCURRENT_TASKS: "many" })).toBe(
      'environment variable MAX_CONCURRENT_TASKS: key "MAX_CONCURRENT_TASKS" has value "many": expected number',
    );
    expect(errorOf({}, { PORT: "-1" })).toBe(
      'environment variable PORT: key "port" has value -1: must be >=0',
    );
    expect(errorOf({}, { DATABASE_URL: "mysql://x:secretpw@h/db" })).toBe(
      'environment variable DATABASE_URL: must be a postgres:// or postgresql:// URL, got "mysql://x:***@h/db"',
    );
    expect(errorOf({}, { TME_BOOTSTRAP_API_KEY: "short" })).toBe(
      "environment variable TME_BOOTSTRAP_API_KEY: must be at least 32 characters (got 5)",
    );
  });

  it("reports broken YAML with its line and never echoes a password", () => {
    expect(errorOf({ app: "port: 1\n  bad: [\n" })).toMatch(
      /^<dir>\/app_config\.yaml(:\d+)?: not valid YAML: /,
    );
    expect(errorOf({ db: "password: 12345\n" })).toBe(
      '<dir>/db_config.yaml: key "password" has value (hidden): expected string',
    );
  });

  it("redacts passwords from URLs", () => {
    expect(redactUrl("postgres://u:pw@h:5432/d")).toBe("postgres://u:***@h:5432/d");
  });
});
