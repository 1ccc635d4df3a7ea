import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import {
  CLOUD_ENV_NAMES,
  CloudEnvironmentError,
  FUNCTION_ENVIRONMENT,
  loadCloudEnvironment,
  PRIORITY_CLASSES,
  priorityClassOf,
  TME_FUNCTIONS,
  taskQueueUrls,
} from "../../functions/config/cloud-environment.js";
import { readSettings, SettingsError, splitConcurrency } from "../../infra/settings.js";

const QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/tme";

/** A complete, valid environment, as the stack would set it. */
const VALID: Record<string, string> = {
  TME_RUNTIME: "cloud",
  LOG_LEVEL: "INFO",
  TME_CONFIG_DIR: "/var/task/configurations",
  DATABASE_SECRET_ARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
  DATABASE_HOST: "tme-proxy.proxy-abc.eu-west-1.rds.amazonaws.com",
  DATABASE_PORT: "5432",
  DATABASE_NAME: "tme",
  MAX_CONCURRENT_TASKS: "10",
  MAX_TASK_TIMEOUT_SECONDS: "870",
  TASK_QUEUE_URL_HIGH: `${QUEUE}-high`,
  TASK_QUEUE_URL_NORMAL: `${QUEUE}-normal`,
  TASK_QUEUE_URL_LOW: `${QUEUE}-low`,
  EVENT_BUS_NAME: "TmeEventsBus",
  SCHEDULE_GROUP_NAME: "Tme-Scheduling-UserSchedules",
  SCHEDULE_TARGET_ARN: "arn:aws:lambda:eu-west-1:123456789012:function:tme-schedule-target",
  SCHEDULER_ROLE_ARN: "arn:aws:iam::123456789012:role/tme-scheduler",
  SCHEDULE_DEAD_LETTER_ARN: "arn:aws:sqs:eu-west-1:123456789012:tme-schedule-dlq",
  ENCRYPTION_KEY_SECRET_ARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:key-AbCdEf",
  TME_MIGRATIONS_DIR: "/var/task/migrations",
  FIRST_ADMIN_KEY_SECRET_ARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:first-AbCdEf",
  SHELL_ENABLED: "false",
};

describe("loadCloudEnvironment", () => {
  it("covers every variable of the contract in the valid fixture", () => {
    expect(Object.keys(VALID).sort()).toEqual([...CLOUD_ENV_NAMES].sort());
  });

  it("returns exactly the variables of the function, numbers parsed", () => {
    const env = loadCloudEnvironment("worker", VALID);
    expect(Object.keys(env).sort()).toEqual([...FUNCTION_ENVIRONMENT.worker].sort());
    expect(env.MAX_CONCURRENT_TASKS).toBe(10);
    expect(env.DATABASE_PORT).toBe(5432);
    expect(taskQueueUrls(env)).toEqual({
      high: `${QUEUE}-high`,
      normal: `${QUEUE}-normal`,
      low: `${QUEUE}-low`,
    });
  });

  it("accepts each function's own variables and nothing more", () => {
    for (const fn of TME_FUNCTIONS) {
      const own = Object.fromEntries(FUNCTION_ENVIRONMENT[fn].map((name) => [name, VALID[name]]));
      expect(() => loadCloudEnvironment(fn, own), fn).not.toThrow();
    }
  });

  it("names every missing variable and the function that needs it, on one line", () => {
    const env = { ...VALID, DATABASE_HOST: undefined, EVENT_BUS_NAME: "" };
    expect(() => loadCloudEnvironment("api", env)).toThrow(CloudEnvironmentError);
    expect(() => loadCloudEnvironment("api", env)).toThrow(
      "environment variable DATABASE_HOST: missing (required by the api function); " +
        "environment variable EVENT_BUS_NAME: missing (required by the api function)",
    );
  });

  it("says what is wrong with a malformed value", () => {
    const attempt = (name: string, value: string) => () =>
      loadCloudEnvironment("api", { ...VALID, [name]: value });
    expect(attempt("TME_RUNTIME", "local")).toThrow(
      'environment variable TME_RUNTIME: value "local": must be "cloud"',
    );
    expect(attempt("SCHEDULER_ROLE_ARN", "tme-scheduler")).toThrow(
      'environment variable SCHEDULER_ROLE_ARN: value "tme-scheduler": must be an ARN of iam',
    );
    expect(attempt("MAX_CONCURRENT_TASKS", "ten")).toThrow("must be a whole number");
    expect(attempt("MAX_TASK_TIMEOUT_SECONDS", "3600")).toThrow(/MAX_TASK_TIMEOUT_SECONDS.*900/);
    expect(attempt("TASK_QUEUE_URL_LOW", "sqs://x")).toThrow("must be an https:// URL");
    expect(attempt("LOG_LEVEL", "TRACE")).toThrow("allowed: DEBUG, INFO, WARN, ERROR");
    for (const [name, value] of Object.entries({
      TME_RUNTIME: "local",
      LOG_LEVEL: "x",
      DATABASE_PORT: "0",
    })) {
      expect(() => loadCloudEnvironment("migrate", { ...VALID, [name]: value })).toThrow(/^[^\n]+$/);
    }
  });

  it("never gives schedule-target its own ARN (a CloudFormation self-reference)", () => {
    expect(FUNCTION_ENVIRONMENT["schedule-target"]).not.toContain("SCHEDULE_TARGET_ARN");
  });
});

describe("priority classes", () => {
  it("map every priority 0..9 to exactly the class whose range holds it", () => {
    for (let priority = 0; priority <= 9; priority++) {
      const cls = priorityClassOf(priority);
      expect(priority).toBeGreaterThanOrEqual(PRIORITY_CLASSES[cls].min);
      expect(priority).toBeLessThanOrEqual(PRIORITY_CLASSES[cls].max);
    }
    expect([0, 3, 4, 6, 7, 9].map(priorityClassOf)).toEqual([
      "low",
      "low",
      "normal",
      "normal",
      "high",
      "high",
    ]);
  });
});

describe("settings", () => {
  it("split any total of 6 or more exactly, each share at least 2, high the largest", () => {
    for (let total = 6; total <= 300; total++) {
      const { high, normal, low } = splitConcurrency(total);
      expect(high + normal + low, String(total)).toBe(total);
      expect(Math.min(high, normal, low), String(total)).toBeGreaterThanOrEqual(2);
      expect(high, String(total)).toBeGreaterThanOrEqual(normal);
      expect(normal, String(total)).toBeGreaterThanOrEqual(low);
    }
    expect(splitConcurrency(10)).toEqual({ high: 5, normal: 3, low: 2 });
  });

  it("read context values given as strings on the command line", () => {
    const app = new App({ context: { maxConcurrentTasks: "24", deletionProtection: "false" } });
    expect(readSettings(app.node)).toMatchObject({ maxConcurrentTasks: 24, deletionProtection: false });
  });

  it("default what cdk.json leaves out", () => {
    expect(readSettings(new App().node)).toMatchObject({
      maxConcurrentTasks: 10,
      logLevel: "INFO",
      natGateways: 1,
    });
  });

  it("refuse a concurrency the three event sources cannot share, saying which value and why", () => {
    const app = new App({ context: { maxConcurrentTasks: 4 } });
    expect(() => readSettings(app.node)).toThrow(SettingsError);
    expect(() => readSettings(app.node)).toThrow(/^CDK context value maxConcurrentTasks=4: .*6/);
  });
});
