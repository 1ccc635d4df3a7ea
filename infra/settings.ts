import type { Node } from "constructs";
import * as z from "zod";

/**
 * Deploy-time choices, read from CDK context (cdk.json, or `-c key=value` on the command
 * line, which arrives as a string: hence the coercions).
 */
const boolean = z.union([
  z.boolean(),
  z.enum(["true", "false"], { error: "must be true or false" }).transform((v) => v === "true"),
]);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const SettingsSchema = z.object({
  // Each of the three SQS event sources needs a maximum concurrency of at least 2 (an
  // AWS minimum), so fewer than 6 would let the sources together exceed the reserved
  // concurrency and turn the limit into throttling.
  maxConcurrentTasks: int(6, 1000).default(10),
  logLevel: z.enum(["DEBUG", "INFO", "WARN", "ERROR"]).default("INFO"),
  deletionProtection: boolean.default(true),
  dbMultiAz: boolean.default(true),
  dbInstanceType: z
    .string()
    .regex(/^[a-z0-9]+\.[a-z0-9]+$/, "must be an instance type like t4g.small")
    .default("t4g.small"),
  dbSecretRotationDays: int(1, 365).default(30),
  natGateways: int(1, 3).default(1),
  apiRateLimit: int(1, 10000).default(100),
  apiBurstLimit: int(1, 5000).default(200),
  queueAgeAlarmSeconds: int(60, 86400).default(900),
  apiLatencyAlarmMs: int(100, 30000).default(5000),
  errorRateAlarmPercent: int(1, 100).default(5),
  outboxAgeAlarmSeconds: int(60, 86400).default(300),
  dbCpuAlarmPercent: int(10, 100).default(80),
  // About 80 % of max_connections on t4g.small (LEAST(memory / 9531392, 5000), about 190).
  dbConnectionsAlarm: int(1, 5000).default(150),
  dbFreeStorageAlarmGiB: int(1, 1000).default(2),
  alarmEmail: z.email().optional(),
  // Off by default: a shell command in a Lambda runs beside the function's AWS credentials
  // (its environment, /proc/<ppid>/environ), see infra/README.md.
  enableShell: boolean.default(false),
});
export type TmeSettings = z.infer<typeof SettingsSchema>;

export class SettingsError extends Error {
  override name = "SettingsError";
}

export function readSettings(node: Node): TmeSettings {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(SettingsSchema.shape)) {
    const value: unknown = node.tryGetContext(key);
    if (value !== undefined && value !== "") raw[key] = value;
  }
  const result = SettingsSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.join(".");
    throw new SettingsError(
      `CDK context value ${key}=${JSON.stringify(raw[key])}: ${issue.message} (set it in cdk.json or with -c ${key}=...)`,
    );
  }
  return result.data;
}

/**
 * How the worker's reserved concurrency is split between the per-priority event sources.
 * A fixed share guarantees high-priority tasks capacity while low ones are backed up; the
 * cost is that a lone class cannot use the others' idle share.
 */
export function splitConcurrency(total: number): { high: number; normal: number; low: number } {
  if (!Number.isInteger(total) || total < 6) {
    throw new SettingsError(`maxConcurrentTasks must be an integer >= 6, got ${total}`);
  }
  const low = Math.max(2, Math.round(total * 0.2));
  const normal = Math.max(2, Math.round(total * 0.3));
  return { high: total - normal - low, normal, low };
}
