import path from "node:path";
import { Match } from "aws-cdk-lib/assertions";
import type { CfnQueue } from "aws-cdk-lib/aws-sqs";
import { beforeAll, describe, expect, it } from "vitest";
import { FUNCTION_ENVIRONMENT, TME_FUNCTIONS } from "../../functions/config/cloud-environment.js";
import { migrationsFingerprint } from "../../infra/constructs/migration.js";
import { REPO_ROOT } from "../../infra/constructs/tme-function.js";
import { type Synthesized, synthesize } from "./synth.js";

// Not cdk.json's 10, so the test proves the value comes from context.
const MAX_CONCURRENT_TASKS = 12;

type Json = Record<string, unknown>;
interface Resource {
  Type: string;
  Properties: Record<string, any>;
  DependsOn?: string[];
}
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Json;
}

let s: Synthesized;
let resources: Record<string, Resource>;

beforeAll(() => {
  s = synthesize({ maxConcurrentTasks: MAX_CONCURRENT_TASKS });
  resources = s.template.toJSON().Resources as Record<string, Resource>;
});

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const queueId = (queue: { node: { defaultChild?: unknown } }) =>
  s.stack.getLogicalId(queue.node.defaultChild as CfnQueue);
const arnOf = (id: string) => ({ "Fn::GetAtt": [id, "Arn"] });
const actions = (st: Statement) => (Array.isArray(st.Action) ? st.Action : [st.Action]);

/** Every IAM statement of the role a function runs as. */
function statementsOf(functionId: string): Statement[] {
  const roleId = (resources[functionId]!.Properties.Role as { "Fn::GetAtt": [string, string] })[
    "Fn::GetAtt"
  ][0];
  return ofType("AWS::IAM::Policy")
    .filter(([, p]) => (p.Properties.Roles as Json[]).some((r) => r.Ref === roleId))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
}

describe("worker and priority queues", () => {
  it("reserves exactly the maxConcurrentTasks context value for the worker", () => {
    expect(resources[s.functionIds.worker]!.Properties.ReservedConcurrentExecutions).toBe(
      MAX_CONCURRENT_TASKS,
    );
  });

  it("gives each priority queue a DLQ after 5 receives and a visibility timeout above the worker's", () => {
    const workerTimeout = resources[s.functionIds.worker]!.Properties.Timeout as number;
    expect(workerTimeout).toBe(900);
    for (const { queue, deadLetterQueue } of Object.values(s.stack.tasks.queues)) {
      const props = resources[queueId(queue)]!.Properties;
      expect(props.RedrivePolicy).toEqual({
        deadLetterTargetArn: arnOf(queueId(deadLetterQueue)),
        maxReceiveCount: 5,
      });
      expect(props.VisibilityTimeout).toBeGreaterThan(workerTimeout);
      expect(props.SqsManagedSseEnabled).toBe(true);
    }
  });

  it("feeds the worker one task per invocation from each queue, reporting batch item failures", () => {
    for (const { queue, maxConcurrency } of Object.values(s.stack.tasks.queues)) {
      s.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        EventSourceArn: arnOf(queueId(queue)),
        FunctionName: { Ref: s.functionIds.worker },
        BatchSize: 1,
        FunctionResponseTypes: ["ReportBatchItemFailures"],
        ScalingConfig: { MaximumConcurrency: maxConcurrency },
      });
    }
  });

  it("splits the reserved concurrency between the event sources, high getting the most", () => {
    const { high, normal, low } = s.stack.tasks.queues;
    expect(high.maxConcurrency + normal.maxConcurrency + low.maxConcurrency).toBe(MAX_CONCURRENT_TASKS);
    expect(high.maxConcurrency).toBeGreaterThan(normal.maxConcurrency);
    expect(normal.maxConcurrency).toBeGreaterThanOrEqual(low.maxConcurrency);
    expect(low.maxConcurrency).toBeGreaterThanOrEqual(2);
  });
});

describe("database", () => {
  it("runs PostgreSQL 17, encrypted, backed up, protected, private, multi-AZ", () => {
    s.template.hasResourceProperties("AWS::RDS::DBInstance", {
      Engine: "postgres",
      EngineVersion: Match.stringLikeRegexp("^17(\\.|$)"),
      StorageEncrypted: true,
      PubliclyAccessible: false,
      DeletionProtection: true,
      MultiAZ: true,
      BackupRetentionPeriod: 7,
      MasterUserPassword: Match.objectLike({ "Fn::Join": Match.anyValue() }),
    });
    s.template.hasResourceProperties("AWS::RDS::DBParameterGroup", { Family: "postgres17" });
  });

  it("places the instance and the proxy only in isolated subnets", () => {
    const isolated = (subnetRef: Json) => {
      const subnet = resources[subnetRef.Ref as string]!;
      expect(subnet.Type).toBe("AWS::EC2::Subnet");
      expect(subnet.Properties.Tags).toContainEqual({ Key: "aws-cdk:subnet-type", Value: "Isolated" });
    };
    const [[, subnetGroup]] = ofType("AWS::RDS::DBSubnetGroup") as [[string, Resource]];
    (subnetGroup.Properties.SubnetIds as Json[]).forEach(isolated);
    const [[, proxy]] = ofType("AWS::RDS::DBProxy") as [[string, Resource]];
    (proxy.Properties.VpcSubnetIds as Json[]).forEach(isolated);
    expect(subnetGroup.Properties.SubnetIds).toHaveLength(2);
  });

  it("puts an RDS Proxy requiring TLS in front, authenticating with the generated master secret", () => {
    const [[attachmentId, attachment]] = ofType("AWS::SecretsManager::SecretTargetAttachment") as [
      [string, Resource],
    ];
    s.template.hasResourceProperties("AWS::RDS::DBProxy", {
      EngineFamily: "POSTGRESQL",
      RequireTLS: true,
      Auth: [
        {
          AuthScheme: "SECRETS",
          IAMAuth: "DISABLED",
          ClientPasswordAuthType: "POSTGRES_SCRAM_SHA_256",
          SecretArn: { Ref: attachmentId },
        },
      ],
    });
    const secret = resources[(attachment.Properties.SecretId as Json).Ref as string]!;
    expect(secret.Properties.GenerateSecretString).toMatchObject({
      GenerateStringKey: "password",
      SecretStringTemplate: '{"username":"tme_admin"}',
    });
    // Named after the stack: a proxy name is unique per account and region.
    expect(ofType("AWS::RDS::DBProxy")[0]![1].Properties.DBProxyName).toBe(`${s.stack.stackName}-proxy`);
    s.template.hasResourceProperties("AWS::SecretsManager::RotationSchedule", {
      SecretId: { Ref: attachmentId },
      RotationRules: { ScheduleExpression: "rate(30 days)" },
    });
  });

  it("admits connections to the proxy only from the Lambda security group", () => {
    const lambdaSg = s.stack.getLogicalId(s.stack.data.lambdaSecurityGroup.node.defaultChild as never);
    const [[, proxy]] = ofType("AWS::RDS::DBProxy") as [[string, Resource]];
    const proxySg = (proxy.Properties.VpcSecurityGroupIds as Json[])[0]!["Fn::GetAtt"] as [string, string];
    const ingress = ofType("AWS::EC2::SecurityGroupIngress").filter(
      ([, r]) => (r.Properties.GroupId as Json)["Fn::GetAtt"]?.toString() === proxySg.toString(),
    );
    expect(ingress).toHaveLength(1);
    expect(ingress[0]![1].Properties).toMatchObject({
      FromPort: 5432,
      ToPort: 5432,
      SourceSecurityGroupId: { "Fn::GetAtt": [lambdaSg, "GroupId"] },
    });
  });
});

describe("scheduler", () => {
  it("lets only scheduler.amazonaws.com of this account assume the scheduler role", () => {
    const roleId = s.stack.getLogicalId(s.stack.scheduling.schedulerRole.node.defaultChild as never);
    expect(resources[roleId]!.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      {
        Action: "sts:AssumeRole",
        Effect: "Allow",
        Principal: { Service: "scheduler.amazonaws.com" },
        Condition: {
          StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } },
          ArnLike: { "aws:SourceArn": expect.anything() },
        },
      },
    ]);
  });

  it("lets the scheduler role invoke the schedule-target function and send to its DLQ, nothing else", () => {
    const roleId = s.stack.getLogicalId(s.stack.scheduling.schedulerRole.node.defaultChild as never);
    const statements = ofType("AWS::IAM::Policy")
      .filter(([, p]) => (p.Properties.Roles as Json[]).some((r) => r.Ref === roleId))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
    expect(statements.filter((st) => !actions(st).some((a) => a.startsWith("sqs:")))).toEqual([
      { Action: "lambda:InvokeFunction", Effect: "Allow", Resource: arnOf(s.functionIds["schedule-target"]) },
    ]);
    const sqsResources = statements.filter((st) => actions(st).some((a) => a.startsWith("sqs:")));
    expect(sqsResources.map((st) => st.Resource)).toEqual([
      arnOf(queueId(s.stack.scheduling.deadLetterQueue)),
    ]);
    expect(resources[roleId]!.Properties.ManagedPolicyArns).toBeUndefined();
  });

  it("lets the scheduler role dead-letter into the schedule DLQ, whose ARN the api and the reaper get", () => {
    const roleId = s.stack.getLogicalId(s.stack.scheduling.schedulerRole.node.defaultChild as never);
    const dlqId = queueId(s.stack.scheduling.deadLetterQueue);
    const statements = ofType("AWS::IAM::Policy")
      .filter(([, p]) => (p.Properties.Roles as Json[]).some((r) => r.Ref === roleId))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: "Allow",
        Resource: arnOf(dlqId),
        Action: expect.arrayContaining(["sqs:SendMessage"]),
      }),
    );
    for (const name of ["api", "reaper"] as const) {
      const env = resources[s.functionIds[name]]!.Properties.Environment.Variables as Json;
      expect(env.SCHEDULE_DEAD_LETTER_ARN, name).toEqual(arnOf(dlqId));
    }
  });

  it("lets the api and the reaper manage schedules in TME's group and pass only the scheduler role", () => {
    const groupName = s.stack.scheduling.group.scheduleGroupName;
    const roleId = s.stack.getLogicalId(s.stack.scheduling.schedulerRole.node.defaultChild as never);
    for (const name of ["api", "reaper"] as const) {
      const statements = statementsOf(s.functionIds[name]);
      const manage = statements.find((st) => actions(st).includes("scheduler:CreateSchedule"))!;
      expect(actions(manage).sort()).toEqual([
        "scheduler:CreateSchedule",
        "scheduler:DeleteSchedule",
        "scheduler:GetSchedule",
        "scheduler:UpdateSchedule",
      ]);
      expect(JSON.stringify(manage.Resource)).toContain(`:schedule/${groupName}/*`);
      const pass = statements.find((st) => actions(st).includes("iam:PassRole"))!;
      expect(pass.Resource).toEqual(arnOf(roleId));
      expect(pass.Condition).toEqual({ StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } });
    }
    for (const name of ["worker", "webhook-dispatcher", "schedule-target", "migrate"] as const) {
      const granted = statementsOf(s.functionIds[name]).flatMap(actions);
      expect(granted.filter((a) => a.startsWith("scheduler:") || a === "iam:PassRole")).toEqual([]);
    }
  });

  it("runs the reaper every minute", () => {
    s.template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(1 minute)",
      State: "ENABLED",
      Targets: [Match.objectLike({ Arn: arnOf(s.functionIds.reaper) })],
    });
  });
});

describe("event fan-out", () => {
  it("routes source=tme events from the custom bus to a queue with a DLQ that feeds the dispatcher", () => {
    const busId = s.stack.getLogicalId(s.stack.events.bus.node.defaultChild as never);
    const queue = queueId(s.stack.events.queue);
    s.template.hasResourceProperties("AWS::Events::Rule", {
      EventBusName: { Ref: busId },
      EventPattern: { source: ["tme"] },
      Targets: [
        Match.objectLike({
          Arn: arnOf(queue),
          DeadLetterConfig: { Arn: arnOf(queueId(s.stack.events.undeliveredQueue)) },
        }),
      ],
    });
    expect(resources[queue]!.Properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: arnOf(queueId(s.stack.events.deadLetterQueue)),
      maxReceiveCount: 5,
    });
    s.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: arnOf(queue),
      FunctionName: { Ref: s.functionIds["webhook-dispatcher"] },
      FunctionResponseTypes: ["ReportBatchItemFailures"],
    });
  });

  it("lets EventBridge send to the webhook queue", () => {
    s.template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      Queues: [{ Ref: queueId(s.stack.events.queue) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: Match.arrayWith(["sqs:SendMessage"]),
            Principal: { Service: "events.amazonaws.com" },
          }),
        ]),
      },
    });
  });
});

describe("Lambda functions", () => {
  it("are the TME handlers on Node.js 22, arm64, traced, with their own log groups; all but the dashboard's in the VPC", () => {
    expect(Object.keys(s.functionIds).sort()).toEqual([...TME_FUNCTIONS].sort());
    for (const [name, id] of Object.entries(s.functionIds)) {
      const props = resources[id]!.Properties;
      expect(props, name).toMatchObject({
        Runtime: "nodejs22.x",
        Architectures: ["arm64"],
        Handler: "index.handler",
        TracingConfig: { Mode: "Active" },
        LoggingConfig: { LogGroup: { Ref: expect.any(String) } },
      });
      if (name === "dashboard") expect(props.VpcConfig, name).toBeUndefined();
      else expect(props.VpcConfig.SubnetIds, name).toHaveLength(2);
    }
  });

  it("get exactly the environment the cloud-environment contract promises each of them", () => {
    for (const [name, id] of Object.entries(s.functionIds) as [keyof typeof FUNCTION_ENVIRONMENT, string][]) {
      const variables = resources[id]!.Properties.Environment.Variables as Json;
      expect(Object.keys(variables).sort(), name).toEqual(
        [...FUNCTION_ENVIRONMENT[name], "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS"].sort(),
      );
      if (name === "dashboard") continue;
      expect(variables, name).toMatchObject({
        TME_RUNTIME: "cloud",
        TME_CONFIG_DIR: "/var/task/configurations",
        DATABASE_NAME: "tme",
        DATABASE_PORT: "5432",
        NODE_OPTIONS: "--enable-source-maps",
        // Lambda's bundle with the RDS CAs, for sslmode=verify-full.
        NODE_EXTRA_CA_CERTS: "/var/runtime/ca-cert.pem",
      });
    }
    const worker = resources[s.functionIds.worker]!.Properties.Environment.Variables as Json;
    expect(worker.MAX_CONCURRENT_TASKS).toBe(String(MAX_CONCURRENT_TASKS));
    expect(worker.MAX_TASK_TIMEOUT_SECONDS).toBe("870");
    const migrate = resources[s.functionIds.migrate]!.Properties.Environment.Variables as Json;
    expect(migrate.TME_MIGRATIONS_DIR).toBe("/var/task/migrations");
  });

  it("generate the encryption key as 64 hex characters (32 bytes), which the reaper may read too", () => {
    const keyId = s.stack.getLogicalId(s.stack.encryptionKey.node.defaultChild as never);
    const generate = resources[keyId]!.Properties.GenerateSecretString as Json;
    expect(generate).toMatchObject({ PasswordLength: 64, ExcludeUppercase: true, ExcludePunctuation: true });
    // What remains of Secrets Manager's alphabet is exactly the hex digits.
    const lower = "abcdefghijklmnopqrstuvwxyz".split("");
    const left = lower.filter((c) => !(generate.ExcludeCharacters as string).includes(c));
    expect(left.join("")).toBe("abcdef");
    const reaper = resources[s.functionIds.reaper]!.Properties.Environment.Variables as Json;
    expect(reaper.ENCRYPTION_KEY_SECRET_ARN).toEqual({ Ref: keyId });
  });

  it("keep shell commands off unless deployed with enableShell", () => {
    const worker = resources[s.functionIds.worker]!.Properties.Environment.Variables as Json;
    expect(worker.SHELL_ENABLED).toBe("false");
    const enabled = synthesize({ enableShell: "true" });
    const on =
      enabled.template.toJSON().Resources[enabled.functionIds.worker].Properties.Environment.Variables;
    expect(on.SHELL_ENABLED).toBe("true");
  });

  it("give migrate the first admin key secret, whose ARN is a stack output", () => {
    const firstId = s.stack.getLogicalId(s.stack.firstAdminKey.node.defaultChild as never);
    const migrate = resources[s.functionIds.migrate]!.Properties.Environment.Variables as Json;
    expect(migrate.FIRST_ADMIN_KEY_SECRET_ARN).toEqual({ Ref: firstId });
    expect(
      statementsOf(s.functionIds.migrate).some(
        (st) =>
          actions(st).includes("secretsmanager:GetSecretValue") &&
          JSON.stringify(st.Resource).includes(firstId),
      ),
    ).toBe(true);
    expect(s.template.toJSON().Outputs.FirstAdminKeySecretArn.Value).toEqual({ Ref: firstId });
    for (const name of ["api", "worker", "reaper"] as const) {
      expect(JSON.stringify(statementsOf(s.functionIds[name])), name).not.toContain(firstId);
    }
  });

  it("may read the encryption key secret only where the contract names it", () => {
    const keyId = s.stack.getLogicalId(s.stack.encryptionKey.node.defaultChild as never);
    for (const [name, id] of Object.entries(s.functionIds) as [keyof typeof FUNCTION_ENVIRONMENT, string][]) {
      const reads = statementsOf(id).some(
        (st) =>
          actions(st).includes("secretsmanager:GetSecretValue") &&
          JSON.stringify(st.Resource).includes(keyId),
      );
      expect(reads, name).toBe(
        (FUNCTION_ENVIRONMENT[name] as readonly string[]).includes("ENCRYPTION_KEY_SECRET_ARN"),
      );
    }
  });
});

describe("HTTP API", () => {
  it("sends every route to the api function, GET /dashboard and below to the dashboard function, with payload format 2.0", () => {
    const integrations = ofType("AWS::ApiGatewayV2::Integration");
    const integrationOf = (fn: string) =>
      integrations.find(
        ([, r]) => JSON.stringify(r.Properties.IntegrationUri) === JSON.stringify(arnOf(fn)),
      )?.[0];
    const api = integrationOf(s.functionIds.api);
    const dashboard = integrationOf(s.functionIds.dashboard);
    expect(api).toBeDefined();
    expect(dashboard).toBeDefined();
    for (const [, r] of integrations) {
      expect(r.Properties).toMatchObject({ IntegrationType: "AWS_PROXY", PayloadFormatVersion: "2.0" });
    }
    const targetOf = Object.fromEntries(
      ofType("AWS::ApiGatewayV2::Route").map(([, r]) => [r.Properties.RouteKey, r.Properties.Target]),
    );
    const target = (id: string | undefined) => ({ "Fn::Join": ["", ["integrations/", { Ref: id }]] });
    expect(targetOf).toEqual({
      $default: target(api),
      "GET /dashboard": target(dashboard),
      "GET /dashboard/{proxy+}": target(dashboard),
    });
  });

  it("throttles and logs access on the $default stage", () => {
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: "$default",
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp("requestId") },
    });
  });
});

describe("migrations", () => {
  it("run through a custom resource backed by the migrate function, after the proxy exists", () => {
    const [[id, resource]] = ofType("Custom::TmeMigrations") as [[string, Resource]];
    expect(resource.Properties.MigrationsFingerprint).toBe(
      migrationsFingerprint(path.join(REPO_ROOT, "migrations")),
    );
    const proxyId = s.stack.getLogicalId(s.stack.data.proxy.node.defaultChild as never);
    expect(resource.DependsOn).toContain(proxyId);
    const providerFn = ofType("AWS::Lambda::Function").find(([, r]) =>
      JSON.stringify(r.Properties.Environment ?? {}).includes(s.functionIds.migrate),
    );
    expect(providerFn, "provider framework function").toBeDefined();
    expect(resource.Properties.ServiceToken).toEqual(arnOf(providerFn![0]));
    expect(id).toMatch(/^Migration/);
  });
});

describe("alarms", () => {
  const alarms = () => ofType("AWS::CloudWatch::Alarm").map(([, r]) => r.Properties);
  const dims = (props: Json) => JSON.stringify(props.Dimensions);

  it("all notify the one SNS topic, on alarm and on recovery", () => {
    const topicId = s.stack.getLogicalId(s.stack.monitoring.topic.node.defaultChild as never);
    expect(alarms().length).toBeGreaterThanOrEqual(15);
    for (const alarm of alarms()) {
      expect(alarm.AlarmActions).toEqual([{ Ref: topicId }]);
      expect(alarm.OKActions).toEqual([{ Ref: topicId }]);
    }
  });

  it("watch every dead-letter queue for a single message", () => {
    const dlqs = [
      ...Object.values(s.stack.tasks.queues).map((q) => q.deadLetterQueue),
      s.stack.events.deadLetterQueue,
      s.stack.events.undeliveredQueue,
      s.stack.scheduling.deadLetterQueue,
    ];
    for (const dlq of dlqs) {
      const alarm = alarms().find(
        (a) => a.MetricName === "ApproximateNumberOfMessagesVisible" && dims(a).includes(queueId(dlq)),
      );
      expect(alarm).toMatchObject({ Threshold: 0, ComparisonOperator: "GreaterThanThreshold" });
    }
  });

  /** The alarm whose metric math reads `metric` of `dimension` (a function id or the API). */
  const rateAlarm = (metric: string, dimension: string) =>
    alarms().filter((a) => {
      const metrics = (a.Metrics ?? []) as Json[];
      return metrics.some(
        (m) =>
          (m.MetricStat as { Metric?: { MetricName?: string } } | undefined)?.Metric?.MetricName === metric &&
          JSON.stringify(m).includes(dimension),
      );
    });

  it("raise error alarms on rates over three periods, not on one error: every function, worker throttles, API 5xx", () => {
    for (const [name, id] of Object.entries(s.functionIds)) {
      const [alarm, ...more] = rateAlarm("Errors", id);
      expect(more, name).toEqual([]);
      expect(alarm, name).toMatchObject({
        Threshold: 5,
        ComparisonOperator: "GreaterThanThreshold",
        EvaluationPeriods: 3,
        TreatMissingData: "notBreaching",
      });
      const expression = (alarm!.Metrics as Json[]).find((m) => m.Expression);
      expect(expression!.Expression).toBe("IF(whole > 0, 100 * part / whole, 0)");
      expect(JSON.stringify(alarm!.Metrics)).toContain('"MetricName":"Invocations"');
    }
    expect(rateAlarm("Throttles", s.functionIds.worker)).toHaveLength(1);
    expect(rateAlarm("5xx", "ApiId")).toMatchObject([{ Threshold: 5, EvaluationPeriods: 3 }]);
    // No alarm left that fires on a single function error.
    expect(alarms().filter((a) => a.MetricName === "Errors")).toEqual([]);
  });

  it("watch queue age and API p99 latency", () => {
    const find = (metric: string, dimension?: string) =>
      alarms().filter((a) => a.MetricName === metric && (!dimension || dims(a).includes(dimension)));
    for (const { queue } of Object.values(s.stack.tasks.queues)) {
      expect(find("ApproximateAgeOfOldestMessage", queueId(queue))).toHaveLength(1);
    }
    expect(find("Latency")).toMatchObject([{ ExtendedStatistic: "p99", Namespace: "AWS/ApiGateway" }]);
  });

  it("watch RDS CPU, connections and free storage", () => {
    const instance = ofType("AWS::RDS::DBInstance")[0]![0];
    const rds = (metric: string) =>
      alarms().filter(
        (a) => a.Namespace === "AWS/RDS" && a.MetricName === metric && dims(a).includes(instance),
      );
    expect(rds("CPUUtilization")).toMatchObject([
      {
        Threshold: 80,
        ComparisonOperator: "GreaterThanThreshold",
        Statistic: "Average",
        EvaluationPeriods: 3,
      },
    ]);
    expect(rds("DatabaseConnections")).toMatchObject([
      { Threshold: 150, ComparisonOperator: "GreaterThanThreshold" },
    ]);
    expect(rds("FreeStorageSpace")).toMatchObject([
      { Threshold: 2 * 1024 ** 3, ComparisonOperator: "LessThanThreshold", Statistic: "Minimum" },
    ]);
  });

  it("watch the outbox age and the reaper's heartbeat, which the reaper publishes; a missing heartbeat is breaching", () => {
    const tme = (metric: string) =>
      alarms().filter(
        (a) =>
          a.Namespace === "TME" &&
          a.MetricName === metric &&
          JSON.stringify(a.Dimensions) === JSON.stringify([{ Name: "service", Value: "tme" }]),
      );
    expect(tme("OutboxOldestAgeSeconds")).toMatchObject([
      { Threshold: 300, ComparisonOperator: "GreaterThanThreshold", Statistic: "Maximum", Period: 60 },
    ]);
    expect(tme("ReaperRuns")).toMatchObject([
      {
        Threshold: 1,
        ComparisonOperator: "LessThanThreshold",
        Statistic: "Sum",
        Period: 60,
        EvaluationPeriods: 5,
        DatapointsToAlarm: 3,
        TreatMissingData: "breaching",
      },
    ]);
  });

  it("take their thresholds from the context", () => {
    const custom = synthesize({
      errorRateAlarmPercent: "10",
      outboxAgeAlarmSeconds: "600",
      dbCpuAlarmPercent: "90",
      dbConnectionsAlarm: "400",
      dbFreeStorageAlarmGiB: "5",
    });
    const all = Object.values(custom.template.toJSON().Resources as Record<string, Resource>)
      .filter((r) => r.Type === "AWS::CloudWatch::Alarm")
      .map((r) => r.Properties);
    const byMetric = (name: string) => all.find((a) => a.MetricName === name);
    expect(byMetric("OutboxOldestAgeSeconds")?.Threshold).toBe(600);
    expect(byMetric("CPUUtilization")?.Threshold).toBe(90);
    expect(byMetric("DatabaseConnections")?.Threshold).toBe(400);
    expect(byMetric("FreeStorageSpace")?.Threshold).toBe(5 * 1024 ** 3);
    expect(all.filter((a) => a.Metrics && a.Threshold === 10).length).toBeGreaterThanOrEqual(8);
  });

  it("are the ones the README lists", () => {
    const ids = ofType("AWS::CloudWatch::Alarm").map(([id]) =>
      id.replace(/^Monitoring/, "").replace(/Alarm[0-9A-F]{8}$/, ""),
    );
    expect(ids.sort()).toEqual(
      [
        "HighPriorityTasksDeadLetters",
        "NormalPriorityTasksDeadLetters",
        "LowPriorityTasksDeadLetters",
        "WebhookEventsDeadLetters",
        "UndeliveredBusEventsDeadLetters",
        "ScheduleInvocationsDeadLetters",
        "HighQueueAge",
        "NormalQueueAge",
        "LowQueueAge",
        "WebhookQueueAge",
        ...Object.keys(s.functionIds).map(
          (fn) =>
            `${fn
              .split("-")
              .map((p) => p[0]!.toUpperCase() + p.slice(1))
              .join("")}ErrorRate`,
        ),
        "WorkerThrottleRate",
        "Api5xxRate",
        "ApiLatencyP99",
        "DatabaseCpu",
        "DatabaseConnections",
        "DatabaseFreeStorage",
        "OutboxAge",
        "ReaperHeartbeat",
      ].sort(),
    );
  });

  it("have a dashboard", () => {
    s.template.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
  });
});
