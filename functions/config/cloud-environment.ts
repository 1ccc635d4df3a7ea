import { z } from "zod";

/**
 * The contract between the CDK stack (infra/) and the Lambda handlers: which environment
 * variables each function is given, and what they must hold. The stack imports the names
 * from here and the handlers validate with `loadCloudEnvironment`, so the two cannot drift.
 *
 * Kept free of AWS SDK imports: the stack, the local runtime and tests all load it.
 */

/** The Lambda functions of the cloud runtime, one per file in functions/handlers/. */
export const TME_FUNCTIONS = [
  "api",
  "worker",
  "schedule-target",
  "webhook-dispatcher",
  "reaper",
  "migrate",
] as const;
export type TmeFunctionName = (typeof TME_FUNCTIONS)[number];

/** Priority classes of the cloud task queues; a task goes to the queue whose range holds its priority. */
export const PRIORITY_CLASSES = {
  high: { min: 7, max: 9 },
  normal: { min: 4, max: 6 },
  low: { min: 0, max: 3 },
} as const;
export type PriorityClass = keyof typeof PRIORITY_CLASSES;

export function priorityClassOf(priority: number): PriorityClass {
  if (priority >= PRIORITY_CLASSES.high.min) return "high";
  if (priority >= PRIORITY_CLASSES.normal.min) return "normal";
  return "low";
}

const nonEmpty = z.string().trim().min(1, "must not be empty");
const arn = (service: string) =>
  z
    .string()
    .regex(
      new RegExp(`^arn:aws[a-z-]*:${service}:`),
      `must be an ARN of ${service} (arn:aws:${service}:...)`,
    );
const positiveInt = (max: number) =>
  z
    .string()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(1).max(max));
const absolutePath = z.string().regex(/^\//, "must be an absolute path");
const httpsUrl = z.string().regex(/^https:\/\/\S+$/, "must be an https:// URL");

/**
 * Every variable the stack may set, keyed by its name. The comment on each says what the
 * stack puts there, so a handler author knows what to expect.
 */
export const CloudEnvironmentShape = {
  /** Always "cloud": tells the shared config loader which runtime it is in. */
  TME_RUNTIME: z.literal("cloud", { error: 'must be "cloud"' }),
  /** DEBUG | INFO | WARN | ERROR, from the CDK context value logLevel. */
  LOG_LEVEL: z.enum(["DEBUG", "INFO", "WARN", "ERROR"], { error: "allowed: DEBUG, INFO, WARN, ERROR" }),
  /** Directory of the YAML configuration copied into every bundle: /var/task/configurations. */
  TME_CONFIG_DIR: absolutePath,
  /**
   * Secrets Manager secret of the RDS master user, JSON with `username` and `password`
   * (also `host`, `port`, `dbname`, but those name the instance, not the proxy: use the
   * variables below). The secret is rotated on a schedule, so a client must fetch it again
   * when the server answers 28P01 (invalid password) instead of caching it forever.
   */
  DATABASE_SECRET_ARN: arn("secretsmanager"),
  /** The RDS Proxy endpoint. The proxy requires TLS; its certificate chains to Amazon's public CAs. */
  DATABASE_HOST: nonEmpty,
  DATABASE_PORT: positiveInt(65535),
  DATABASE_NAME: nonEmpty,
  /** The worker's reserved concurrency, which is the cloud's global limit of tasks running at once. */
  MAX_CONCURRENT_TASKS: positiveInt(1000),
  /**
   * Longest timeout_seconds a task may have in the cloud: the worker Lambda's timeout minus
   * a margin to record the outcome. Longer tasks need the local runtime.
   */
  MAX_TASK_TIMEOUT_SECONDS: positiveInt(900),
  /** SQS queue per priority class (see PRIORITY_CLASSES); the outbox relay sends task ids here. */
  TASK_QUEUE_URL_HIGH: httpsUrl,
  TASK_QUEUE_URL_NORMAL: httpsUrl,
  TASK_QUEUE_URL_LOW: httpsUrl,
  /** The custom EventBridge bus; publish with Source "tme" and DetailType = the event type. */
  EVENT_BUS_NAME: nonEmpty,
  /**
   * The SQS queue the webhook-dispatcher consumes. The bus rule delivers EventBridge events
   * to it; TME may also send its own messages (redeliveries, delayed retries up to 15 min).
   */
  WEBHOOK_QUEUE_URL: httpsUrl,
  /** EventBridge Scheduler group holding one schedule per TME schedule. */
  SCHEDULE_GROUP_NAME: nonEmpty,
  /** The schedule-target function: the Target.Arn of every schedule TME creates. */
  SCHEDULE_TARGET_ARN: arn("lambda"),
  /** The role Scheduler assumes to invoke the schedule-target function: Target.RoleArn. */
  SCHEDULER_ROLE_ARN: arn("iam"),
  /**
   * Secrets Manager secret (a 64-character random alphanumeric string) from which the key
   * that encrypts webhook subscription secrets at rest is derived (e.g. HKDF-SHA-256).
   */
  ENCRYPTION_KEY_SECRET_ARN: arn("secretsmanager"),
  /** Directory of the numbered SQL migrations copied into the migrate bundle: /var/task/migrations. */
  TME_MIGRATIONS_DIR: absolutePath,
} as const;

export type CloudEnvName = keyof typeof CloudEnvironmentShape;
export const CLOUD_ENV_NAMES = Object.keys(CloudEnvironmentShape) as CloudEnvName[];

const DATABASE = [
  "TME_RUNTIME",
  "LOG_LEVEL",
  "TME_CONFIG_DIR",
  "DATABASE_SECRET_ARN",
  "DATABASE_HOST",
  "DATABASE_PORT",
  "DATABASE_NAME",
] as const satisfies readonly CloudEnvName[];

// Every function that changes tasks writes outbox rows and relays them right after commit,
// so each needs the queues and the bus; the reaper relays whatever they left behind.
const OUTBOX = [
  ...DATABASE,
  "MAX_CONCURRENT_TASKS",
  "MAX_TASK_TIMEOUT_SECONDS",
  "TASK_QUEUE_URL_HIGH",
  "TASK_QUEUE_URL_NORMAL",
  "TASK_QUEUE_URL_LOW",
  "EVENT_BUS_NAME",
] as const satisfies readonly CloudEnvName[];

const SCHEDULER = ["SCHEDULE_GROUP_NAME", "SCHEDULE_TARGET_ARN", "SCHEDULER_ROLE_ARN"] as const;

/**
 * Which variables the stack sets on which function, and so which ones each handler may
 * rely on. The schedule-target function does not get SCHEDULE_TARGET_ARN: a function's
 * environment cannot name the function itself in CloudFormation (a circular reference).
 */
export const FUNCTION_ENVIRONMENT = {
  api: [...OUTBOX, ...SCHEDULER, "WEBHOOK_QUEUE_URL", "ENCRYPTION_KEY_SECRET_ARN"],
  worker: [...OUTBOX],
  "schedule-target": [...OUTBOX],
  "webhook-dispatcher": [...OUTBOX, "WEBHOOK_QUEUE_URL", "ENCRYPTION_KEY_SECRET_ARN"],
  // The reaper is the schedule-sync path: it reconciles schedules rows with Scheduler.
  reaper: [...OUTBOX, ...SCHEDULER, "WEBHOOK_QUEUE_URL"],
  migrate: [...DATABASE, "TME_MIGRATIONS_DIR"],
} as const satisfies Record<TmeFunctionName, readonly CloudEnvName[]>;

type Shape = typeof CloudEnvironmentShape;
/** The parsed environment of one function: exactly the variables the stack gives it. */
export type CloudEnvironment<F extends TmeFunctionName> = {
  [K in (typeof FUNCTION_ENVIRONMENT)[F][number]]: z.output<Shape[K]>;
};

/** A missing or malformed variable, reported as one line naming it. */
export class CloudEnvironmentError extends Error {
  override name = "CloudEnvironmentError";
}

/**
 * Validates the variables `fn` is given by the stack and returns them parsed.
 * Throws one CloudEnvironmentError whose single-line message names every bad variable.
 */
export function loadCloudEnvironment<F extends TmeFunctionName>(
  fn: F,
  env: Record<string, string | undefined> = process.env,
): CloudEnvironment<F> {
  const names: readonly CloudEnvName[] = FUNCTION_ENVIRONMENT[fn];
  const problems: string[] = [];
  const parsed: Record<string, unknown> = {};
  for (const name of names) {
    const raw = env[name];
    if (raw === undefined || raw === "") {
      problems.push(`environment variable ${name}: missing (required by the ${fn} function)`);
      continue;
    }
    const result = CloudEnvironmentShape[name].safeParse(raw);
    if (result.success) {
      parsed[name] = result.data;
    } else {
      // None of these values is a secret (the secrets themselves stay in Secrets Manager).
      problems.push(
        `environment variable ${name}: value ${JSON.stringify(raw)}: ${result.error.issues[0]?.message}`,
      );
    }
  }
  if (problems.length > 0) throw new CloudEnvironmentError(problems.join("; "));
  return parsed as CloudEnvironment<F>;
}

/** The queue URL for each priority class, from a parsed environment. */
export function taskQueueUrls(env: CloudEnvironment<"worker">): Record<PriorityClass, string> {
  return { high: env.TASK_QUEUE_URL_HIGH, normal: env.TASK_QUEUE_URL_NORMAL, low: env.TASK_QUEUE_URL_LOW };
}
