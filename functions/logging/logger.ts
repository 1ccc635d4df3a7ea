import pino from "pino";
import type { LogLevel } from "../config/schema.js";

export type Logger = pino.Logger;

const LEVELS: Record<LogLevel, pino.Level> = { DEBUG: "debug", INFO: "info", WARN: "warn", ERROR: "error" };

/** Keys whose values must never reach a log line, wherever they sit in a logged object. */
const SECRET_KEYS = [
  "password",
  "secret",
  "signing_secret",
  "token",
  "authorization",
  "api_key",
  "apiKey",
  "key",
  "databaseUrl",
  "DATABASE_URL",
  "connectionString",
];

export interface LoggerOptions {
  /**
   * Fields added to every line at the time it is written: in Lambda, the invocation's request
   * id, cold start and trace id (functions/adapters/aws/lambda-telemetry.ts).
   */
  fields?: () => Record<string, unknown>;
}

/**
 * Structured JSON logs (one object a line), the same locally and in Lambda, where CloudWatch
 * parses them. Secrets are redacted by key name at any depth up to three levels.
 */
export function createLogger(
  level: LogLevel,
  destination?: pino.DestinationStream,
  options: LoggerOptions = {},
): Logger {
  const paths = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);
  return pino(
    {
      level: LEVELS[level],
      base: { service: "tme" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label.toUpperCase() }) },
      redact: { paths, censor: "[redacted]" },
      ...(options.fields ? { mixin: options.fields } : {}),
    },
    destination,
  );
}

/**
 * A child logger made on its first use. pino's child() serializes its bindings through the
 * redaction paths at once (every key passes the wildcard ones): about 20 us, paid by every API
 * request for a logger that most of them, answered without a line at INFO, never use.
 */
export function lazyChild(parent: Logger, bindings: pino.Bindings): Logger {
  let child: Logger | undefined;
  return new Proxy(parent, {
    get(_parent, property) {
      // A level that is off writes nothing: it need not make the child (a debug line per attempt).
      if (child === undefined && typeof property === "string" && isDisabledLevel(parent, property))
        return noop;
      child ??= parent.child(bindings);
      const value: unknown = Reflect.get(child, property, child);
      return typeof value === "function" ? value.bind(child) : value;
    },
  });
}

/** A logger whose child() is lazyChild: what a worker hands each attempt it runs. */
export function withLazyChildren(logger: Logger): Logger {
  return new Proxy(logger, {
    get(target, property) {
      if (property === "child") return (bindings: pino.Bindings) => lazyChild(target, bindings);
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function isDisabledLevel(logger: Logger, name: string): boolean {
  return name in logger.levels.values && !logger.isLevelEnabled(name);
}

function noop(): void {}
