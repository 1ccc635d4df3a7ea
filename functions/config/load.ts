import { readFileSync } from "node:fs";
import path from "node:path";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { MIN_BOOTSTRAP_KEY_LENGTH } from "../core/auth/api-keys.js";
import { InternalError } from "../core/errors.js";
import { AppConfigSchema, type Config, DbConfigSchema, TaskPluginsSchema } from "./schema.js";

/** A configuration problem, reported as one line: where, which key, what value, what is allowed. */
export class ConfigError extends InternalError {
  override name = "ConfigError";
}

type Env = Record<string, string | undefined>;

/** Environment variables that override a key of a file: variable -> [file, key, parse]. */
const ENV_OVERRIDES: ReadonlyArray<{
  variable: string;
  file: "app" | "db";
  key: string;
  parse: (raw: string) => unknown;
}> = [
  { variable: "MAX_CONCURRENT_TASKS", file: "app", key: "MAX_CONCURRENT_TASKS", parse: parseNumber },
  { variable: "LOG_LEVEL", file: "app", key: "LOG_LEVEL", parse: (v) => v.toUpperCase() },
  { variable: "PORT", file: "app", key: "port", parse: parseNumber },
  { variable: "HOST", file: "app", key: "host", parse: (v) => v },
  { variable: "ALLOW_PRIVATE_CALLBACKS", file: "app", key: "allow_private_callbacks", parse: parseBoolean },
  { variable: "EVENT_NOTIFICATION_FORMAT", file: "app", key: "event_notification_format", parse: (v) => v },
  { variable: "DEFAULT_TASK_TIMEOUT", file: "app", key: "default_task_timeout", parse: parseNumber },
  // The cloud stack sets this to what a worker Lambda can run (15 min less a margin).
  { variable: "MAX_TASK_TIMEOUT_SECONDS", file: "app", key: "max_task_timeout", parse: parseNumber },
  { variable: "METRICS_PORT", file: "app", key: "metrics.port", parse: parseNumber },
  { variable: "SHELL_SANDBOX", file: "app", key: "shell.sandbox", parse: (v) => v.trim().toLowerCase() },
  { variable: "SHELL_NETWORK", file: "app", key: "shell.network", parse: (v) => v.trim().toLowerCase() },
  { variable: "SHELL_BWRAP_PATH", file: "app", key: "shell.bwrap_path", parse: (v) => v },
  { variable: "DATABASE_PASSWORD", file: "db", key: "password", parse: (v) => v },
];

function parseNumber(raw: string): unknown {
  const n = Number(raw);
  return raw.trim() === "" || Number.isNaN(n) ? raw : n;
}

function parseBoolean(raw: string): unknown {
  const v = raw.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  return raw;
}

function readYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return {};
    throw new ConfigError(`${file}: cannot be read (${code ?? String(error)})`);
  }
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const line = first.linePos?.[0]?.line;
    throw new ConfigError(
      `${file}${line ? `:${line}` : ""}: not valid YAML: ${first.message.split("\n")[0]}`,
    );
  }
  const value: unknown = doc.toJS() ?? {};
  if (typeof value !== "object" || Array.isArray(value) || value === null) {
    throw new ConfigError(`${file}: must be a mapping of keys to values`);
  }
  return value as Record<string, unknown>;
}

interface ZodIssueLike {
  code: string;
  path: ReadonlyArray<PropertyKey>;
  message: string;
  keys?: string[];
  values?: unknown[];
  expected?: string;
  minimum?: unknown;
  maximum?: unknown;
}

function valueAt(root: unknown, keyPath: ReadonlyArray<PropertyKey>): unknown {
  let current: unknown = root;
  for (const key of keyPath) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function allowedFor(issue: ZodIssueLike, shapeKeys: string[]): string {
  switch (issue.code) {
    case "invalid_value":
      return `allowed: ${(issue.values ?? []).map(String).join(", ")}`;
    case "unrecognized_keys":
      return `allowed keys: ${shapeKeys.join(", ")}`;
    case "invalid_type":
      return `expected ${issue.expected ?? "another type"}`;
    case "too_small":
    case "too_big":
      return issue.message.replace(/^Too (?:small|big): expected \w+ to (be|have) /, "must $1 ");
    default:
      return issue.message;
  }
}

/** Keys of the zod object at a path, to list what is allowed after a misspelt key. */
function shapeKeysAt(schema: z.ZodType, keyPath: ReadonlyArray<PropertyKey>): string[] {
  // biome-ignore lint/suspicious/noExplicitAny: walking zod's internal definition tree
  let node: any = schema;
  const unwrap = () => {
    for (let i = 0; i < 10 && node?._zod?.def; i++) {
      const def = node._zod.def;
      if (def.type === "object" || def.type === "record") return;
      node = def.innerType ?? def.in ?? def.schema;
    }
  };
  unwrap();
  for (const key of keyPath) {
    const def = node?._zod?.def;
    node = def?.type === "record" ? def.valueType : def?.shape?.[key as string];
    unwrap();
  }
  return Object.keys(node?._zod?.def?.shape ?? {});
}

function validate<S extends z.ZodType>(
  schema: S,
  raw: Record<string, unknown>,
  file: string,
  fromEnv: Map<string, string>,
): z.infer<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  // A misspelt key also makes the real key "missing"; the misspelling is the useful report.
  const issues = result.error.issues as unknown as ZodIssueLike[];
  const issue = issues.find((i) => i.code === "unrecognized_keys") ?? issues[0]!;
  const keyPath = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys?.[0] ?? ""] : issue.path;
  const key = keyPath.map(String).join(".");
  const variable = fromEnv.get(key);
  const where = variable ? `environment variable ${variable}` : file;
  const allowed = allowedFor(issue, shapeKeysAt(schema, issue.path));
  if (issue.code === "unrecognized_keys") {
    throw new ConfigError(`${where}: unknown key "${key}"; ${allowed}`);
  }
  const value = valueAt(raw, issue.path);
  const shown = key.toLowerCase().includes("password") ? "(hidden)" : JSON.stringify(value);
  throw new ConfigError(`${where}: key "${key}" has value ${shown}: ${allowed}`);
}

export interface LoadOptions {
  env?: Env;
  /** Directory holding the YAML files; default env TME_CONFIG_DIR or ./configurations. */
  configDir?: string;
}

/** Sets a dotted key ("metrics.port"), making the sections on the way. */
function setAt(target: Record<string, unknown>, dottedKey: string, value: unknown): void {
  const keys = dottedKey.split(".");
  let section = target;
  for (const key of keys.slice(0, -1)) {
    const next = section[key];
    section[key] = next && typeof next === "object" && !Array.isArray(next) ? next : {};
    section = section[key] as Record<string, unknown>;
  }
  section[keys.at(-1)!] = value;
}

/** Reads the three YAML files, applies environment overrides and validates everything. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const configDir = path.resolve(options.configDir ?? env.TME_CONFIG_DIR ?? "configurations");
  const files = {
    app: path.join(configDir, "app_config.yaml"),
    db: path.join(configDir, "db_config.yaml"),
    plugins: path.join(configDir, "task_plugins.yaml"),
  };
  const raw = { app: readYaml(files.app), db: readYaml(files.db), plugins: readYaml(files.plugins) };
  const fromEnv = { app: new Map<string, string>(), db: new Map<string, string>() };
  for (const override of ENV_OVERRIDES) {
    const value = env[override.variable];
    if (value === undefined || value === "") continue;
    setAt(raw[override.file], override.key, override.parse(value));
    fromEnv[override.file].set(override.key, override.variable);
  }

  const app = validate(AppConfigSchema, raw.app, files.app, fromEnv.app);
  const db = validate(DbConfigSchema, raw.db, files.db, fromEnv.db);
  const plugins = validate(TaskPluginsSchema, raw.plugins, files.plugins, new Map());

  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError(
      `environment variable DATABASE_URL: must be a postgres:// or postgresql:// URL, got ${JSON.stringify(redactUrl(databaseUrl))}`,
    );
  }
  const runtime = env.TME_RUNTIME ?? "local";
  if (runtime !== "local" && runtime !== "cloud") {
    throw new ConfigError(`environment variable TME_RUNTIME: value "${runtime}": allowed: local, cloud`);
  }
  const bootstrapApiKey = env.TME_BOOTSTRAP_API_KEY || undefined;
  if (bootstrapApiKey !== undefined && bootstrapApiKey.length < MIN_BOOTSTRAP_KEY_LENGTH) {
    throw new ConfigError(
      `environment variable TME_BOOTSTRAP_API_KEY: must be at least ${MIN_BOOTSTRAP_KEY_LENGTH} characters (got ${bootstrapApiKey.length})`,
    );
  }
  return {
    app,
    db,
    plugins,
    configDir,
    dataDir: path.resolve(env.TME_DATA_DIR || ".tme"),
    databaseUrl,
    bootstrapApiKey,
    runtime,
  };
}

/** A connection URL with its password replaced, safe to log. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return url.replace(/:\/\/([^:@/]+):[^@/]*@/, "://$1:***@");
  }
}
