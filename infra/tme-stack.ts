import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { NagSuppressions } from "cdk-nag";
import type { Construct } from "constructs";
import { type CloudEnvName, FUNCTION_ENVIRONMENT } from "../functions/config/cloud-environment.js";
import { EventFanout } from "./constructs/event-fanout.js";
import { HttpApi } from "./constructs/http-api.js";
import { Migration } from "./constructs/migration.js";
import { Monitoring } from "./constructs/monitoring.js";
import { NetworkAndDatabase } from "./constructs/network-and-database.js";
import { Scheduling } from "./constructs/scheduling.js";
import { MAX_CLOUD_TASK_TIMEOUT_SECONDS, TaskQueues } from "./constructs/task-queues.js";
import { BUNDLE_CONFIG_DIR, BUNDLE_MIGRATIONS_DIR, type TmeFunction } from "./constructs/tme-function.js";
import { readSettings, type TmeSettings } from "./settings.js";

export interface TmeStackProps extends StackProps {
  /** Overrides the CDK context values (tests use this); default: read from context. */
  readonly settings?: TmeSettings;
}

/** TME's cloud runtime: everything ARCHITECTURE.md "Cloud resources" lists, in one stack. */
export class TmeStack extends Stack {
  readonly settings: TmeSettings;
  readonly data: NetworkAndDatabase;
  readonly tasks: TaskQueues;
  readonly events: EventFanout;
  readonly scheduling: Scheduling;
  readonly httpApi: HttpApi;
  readonly migration: Migration;
  readonly monitoring: Monitoring;
  readonly encryptionKey: secretsmanager.Secret;
  readonly firstAdminKey: secretsmanager.Secret;
  readonly functions: readonly TmeFunction[];

  constructor(scope: Construct, id: string, props: TmeStackProps = {}) {
    super(scope, id, props);
    const settings = props.settings ?? readSettings(this.node);
    this.settings = settings;

    this.data = new NetworkAndDatabase(this, "Data", { settings });
    this.tasks = new TaskQueues(this, "Tasks", {
      data: this.data,
      maxConcurrentTasks: settings.maxConcurrentTasks,
    });
    this.events = new EventFanout(this, "Events", { data: this.data });
    this.scheduling = new Scheduling(this, "Scheduling", { data: this.data });
    this.httpApi = new HttpApi(this, "Http", {
      data: this.data,
      rateLimit: settings.apiRateLimit,
      burstLimit: settings.apiBurstLimit,
    });
    this.migration = new Migration(this, "Migration", { data: this.data });

    this.encryptionKey = new secretsmanager.Secret(this, "SubscriptionSecretsKey", {
      description: "Key material that encrypts TME webhook subscription secrets at rest",
      // 32 random bytes as 64 hex characters, the form parseEncryptionKey reads: Secrets
      // Manager has no hex option, so every letter past "f" and every capital is excluded.
      generateSecretString: {
        passwordLength: 64,
        excludeUppercase: true,
        excludePunctuation: true,
        includeSpace: false,
        excludeCharacters: "ghijklmnopqrstuvwxyz",
      },
    });
    NagSuppressions.addResourceSuppressions(this.encryptionKey, [
      {
        id: "AwsSolutions-SMG4",
        reason:
          "Not a credential but an encryption key for data at rest: rotating it in place would make every stored subscription secret unreadable; replacing it is a re-encryption procedure, not a schedule.",
      },
    ]);

    // The first admin API key: generated here, registered by migrate on every deploy (unless
    // revoked), read once by the operator (infra/README.md "First key"). 48 letters and digits
    // carry 285 bits, above MIN_BOOTSTRAP_KEY_LENGTH's 32 characters.
    this.firstAdminKey = new secretsmanager.Secret(this, "FirstAdminKey", {
      description: "TME's first admin API key (registered at deploy; revoke it once you made your own)",
      generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
    });
    NagSuppressions.addResourceSuppressions(this.firstAdminKey, [
      {
        id: "AwsSolutions-SMG4",
        reason:
          "An API key that TME revokes through its API (DELETE /keys/{id}), not a password a rotation Lambda could change: keys are replaced by creating new ones, and a revoked one stays revoked on redeploy.",
      },
    ]);

    this.functions = [
      this.httpApi.handler,
      this.tasks.worker,
      this.scheduling.scheduleTarget,
      this.events.dispatcher,
      this.scheduling.reaper,
      this.migration.handler,
      this.httpApi.dashboard,
    ];

    const environment = this.cloudEnvironment(settings);
    for (const fn of this.functions) {
      fn.applyEnvironment(environment);
      this.grantWhatTheEnvironmentNames(fn);
    }

    this.monitoring = new Monitoring(this, "Monitoring", {
      functions: this.functions,
      worker: this.tasks.worker,
      taskQueues: this.tasks.queues,
      webhookQueue: this.events.queue,
      deadLetterQueues: [
        ...Object.entries(this.tasks.queues).map(([name, q]) => ({
          name: `${name}-priority tasks`,
          queue: q.deadLetterQueue,
        })),
        { name: "webhook events", queue: this.events.deadLetterQueue },
        { name: "schedule invocations", queue: this.scheduling.deadLetterQueue },
        { name: "undelivered bus events", queue: this.events.undeliveredQueue },
      ],
      httpApi: this.httpApi,
      database: this.data.instance,
      queueAgeAlarmSeconds: settings.queueAgeAlarmSeconds,
      apiLatencyAlarmMs: settings.apiLatencyAlarmMs,
      errorRateAlarmPercent: settings.errorRateAlarmPercent,
      outboxAgeAlarmSeconds: settings.outboxAgeAlarmSeconds,
      dbCpuAlarmPercent: settings.dbCpuAlarmPercent,
      dbConnectionsAlarm: settings.dbConnectionsAlarm,
      dbFreeStorageAlarmGiB: settings.dbFreeStorageAlarmGiB,
      alarmEmail: settings.alarmEmail,
    });

    new CfnOutput(this, "ApiUrl", { value: this.httpApi.url, description: "Base URL of the TME HTTP API" });
    new CfnOutput(this, "EventBusName", { value: this.events.bus.eventBusName });
    new CfnOutput(this, "AlarmTopicArn", { value: this.monitoring.topic.topicArn });
    new CfnOutput(this, "DashboardName", { value: this.monitoring.dashboard.dashboardName });
    new CfnOutput(this, "DatabaseSecretArn", { value: this.data.secret.secretArn });
    new CfnOutput(this, "FirstAdminKeySecretArn", {
      value: this.firstAdminKey.secretArn,
      description: "Secrets Manager secret holding the first admin API key (infra/README.md, First key)",
    });
  }

  /**
   * The value of every variable of the contract in functions/config/cloud-environment.ts.
   * Typed as a complete record: a variable added there and forgotten here does not compile.
   */
  private cloudEnvironment(settings: TmeSettings): Record<CloudEnvName, string> {
    const { queues } = this.tasks;
    return {
      TME_RUNTIME: "cloud",
      LOG_LEVEL: settings.logLevel,
      TME_CONFIG_DIR: BUNDLE_CONFIG_DIR,
      DATABASE_SECRET_ARN: this.data.secret.secretArn,
      DATABASE_HOST: this.data.proxy.endpoint,
      DATABASE_PORT: String(this.data.port),
      DATABASE_NAME: this.data.databaseName,
      MAX_CONCURRENT_TASKS: String(settings.maxConcurrentTasks),
      MAX_TASK_TIMEOUT_SECONDS: String(MAX_CLOUD_TASK_TIMEOUT_SECONDS),
      TASK_QUEUE_URL_HIGH: queues.high.queue.queueUrl,
      TASK_QUEUE_URL_NORMAL: queues.normal.queue.queueUrl,
      TASK_QUEUE_URL_LOW: queues.low.queue.queueUrl,
      EVENT_BUS_NAME: this.events.bus.eventBusName,
      SCHEDULE_GROUP_NAME: this.scheduling.group.scheduleGroupName,
      SCHEDULE_TARGET_ARN: this.scheduling.scheduleTarget.functionArn,
      SCHEDULER_ROLE_ARN: this.scheduling.schedulerRole.roleArn,
      SCHEDULE_DEAD_LETTER_ARN: this.scheduling.deadLetterQueue.queueArn,
      ENCRYPTION_KEY_SECRET_ARN: this.encryptionKey.secretArn,
      TME_MIGRATIONS_DIR: BUNDLE_MIGRATIONS_DIR,
      FIRST_ADMIN_KEY_SECRET_ARN: this.firstAdminKey.secretArn,
      SHELL_ENABLED: String(settings.enableShell),
    };
  }

  /**
   * Permissions follow the environment contract: a function that is told where a resource
   * is may use it, and one that is not told may not. Keeps IAM and the contract in step.
   */
  private grantWhatTheEnvironmentNames(fn: TmeFunction): void {
    const names = new Set<CloudEnvName>(FUNCTION_ENVIRONMENT[fn.tmeName]);
    const grants: Array<[CloudEnvName, (grantee: TmeFunction) => void]> = [
      ["DATABASE_SECRET_ARN", (g) => this.data.grantConnect(g)],
      ["TASK_QUEUE_URL_HIGH", (g) => this.tasks.grantSend(g)],
      ["EVENT_BUS_NAME", (g) => this.events.grantPublish(g)],
      ["FIRST_ADMIN_KEY_SECRET_ARN", (g) => this.firstAdminKey.grantRead(g)],
      ["SCHEDULE_GROUP_NAME", (g) => this.scheduling.grantManageSchedules(g)],
      ["ENCRYPTION_KEY_SECRET_ARN", (g) => this.encryptionKey.grantRead(g)],
    ];
    for (const [name, grant] of grants) if (names.has(name)) grant(fn);
  }
}
