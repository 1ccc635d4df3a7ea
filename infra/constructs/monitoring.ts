import { Duration, Stack } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as rds from "aws-cdk-lib/aws-rds";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import type { PriorityClass } from "../../functions/config/cloud-environment.js";
import type { HttpApi } from "./http-api.js";
import type { PriorityQueue } from "./task-queues.js";
import type { TmeFunction } from "./tme-function.js";

export interface MonitoringProps {
  readonly functions: readonly TmeFunction[];
  readonly worker: TmeFunction;
  readonly taskQueues: Record<PriorityClass, PriorityQueue>;
  readonly webhookQueue: sqs.IQueue;
  /** Every queue where a message lands only because something failed. */
  readonly deadLetterQueues: ReadonlyArray<{ name: string; queue: sqs.IQueue }>;
  readonly httpApi: HttpApi;
  readonly database: rds.DatabaseInstance;
  /** Oldest message age (seconds) on a task or webhook queue that raises an alarm. */
  readonly queueAgeAlarmSeconds: number;
  readonly apiLatencyAlarmMs: number;
  readonly alarmEmail?: string;
}

const PERIOD = Duration.minutes(5);

/** The operator's view: one dashboard, and alarms to one SNS topic. */
export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);

    // A customer-managed key because CloudWatch alarms cannot publish to a topic encrypted
    // with the AWS-managed SNS key: its policy cannot be changed to admit CloudWatch.
    const key = new kms.Key(this, "AlarmTopicKey", {
      description: "Encrypts the TME alarm topic",
      enableKeyRotation: true,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
        resources: ["*"],
        conditions: { StringEquals: { "aws:SourceAccount": Stack.of(this).account } },
      }),
    );
    this.topic = new sns.Topic(this, "AlarmTopic", {
      displayName: "TME alarms",
      masterKey: key,
      enforceSSL: true,
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    const classes = Object.keys(props.taskQueues) as PriorityClass[];

    for (const { name, queue } of props.deadLetterQueues) {
      this.alarm(`${pascal(name)}DeadLetters`, {
        alarmDescription: `Messages in the ${name} dead-letter queue: work that failed every retry needs a look`,
        metric: queue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: "Maximum",
        }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
      });
    }
    for (const priorityClass of classes) {
      this.alarm(`${pascal(priorityClass)}QueueAge`, {
        alarmDescription: `The oldest ${priorityClass}-priority task message waited over ${props.queueAgeAlarmSeconds} s: workers are not keeping up`,
        metric: props.taskQueues[priorityClass].queue.metricApproximateAgeOfOldestMessage({
          period: Duration.minutes(1),
          statistic: "Maximum",
        }),
        threshold: props.queueAgeAlarmSeconds,
        evaluationPeriods: 5,
      });
    }
    this.alarm("WebhookQueueAge", {
      alarmDescription: `The oldest webhook event waited over ${props.queueAgeAlarmSeconds} s: deliveries are behind`,
      metric: props.webhookQueue.metricApproximateAgeOfOldestMessage({
        period: Duration.minutes(1),
        statistic: "Maximum",
      }),
      threshold: props.queueAgeAlarmSeconds,
      evaluationPeriods: 5,
    });

    for (const fn of props.functions) {
      this.alarm(`${pascal(fn.tmeName)}Errors`, {
        alarmDescription: `The ${fn.tmeName} function failed (uncaught errors or timeouts)`,
        metric: fn.metricErrors({ period: PERIOD, statistic: "Sum" }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
      });
    }
    this.alarm("WorkerThrottles", {
      alarmDescription:
        "The worker was throttled: the event sources' maximum concurrency exceeds its reserved concurrency, or the account ran out",
      metric: props.worker.metricThrottles({ period: PERIOD, statistic: "Sum" }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });

    const api = props.httpApi.api;
    this.alarm("Api5xx", {
      alarmDescription: "The HTTP API answered 5xx",
      metric: api.metricServerError({ period: PERIOD, statistic: "Sum" }),
      threshold: 5,
      evaluationPeriods: 1,
    });
    this.alarm("ApiLatencyP99", {
      alarmDescription: `p99 latency of the HTTP API above ${props.apiLatencyAlarmMs} ms for 15 minutes`,
      metric: api.metricLatency({ period: PERIOD, statistic: "p99" }),
      threshold: props.apiLatencyAlarmMs,
      evaluationPeriods: 3,
    });

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      defaultInterval: Duration.hours(3),
    });
    const byClass = (metric: (q: sqs.IQueue) => cloudwatch.IMetric) =>
      classes.map((c) => withLabel(metric(props.taskQueues[c].queue), c));
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Task queue depth (visible messages)",
        left: byClass((q) => q.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) })),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "Oldest task message age (s)",
        left: byClass((q) =>
          q.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: "Maximum" }),
        ),
        leftAnnotations: [{ value: props.queueAgeAlarmSeconds, label: "alarm" }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "Dead-letter queue depth",
        left: props.deadLetterQueues.map(({ name, queue }) =>
          withLabel(queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }), name),
        ),
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Lambda errors",
        left: props.functions.map((fn) => withLabel(fn.metricErrors({ period: PERIOD }), fn.tmeName)),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "Lambda throttles",
        left: props.functions.map((fn) => withLabel(fn.metricThrottles({ period: PERIOD }), fn.tmeName)),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "Lambda duration p99 (ms)",
        left: props.functions.map((fn) =>
          withLabel(fn.metricDuration({ period: PERIOD, statistic: "p99" }), fn.tmeName),
        ),
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "API responses",
        left: [
          withLabel(api.metricCount({ period: PERIOD }), "requests"),
          withLabel(api.metricClientError({ period: PERIOD }), "4xx"),
          withLabel(api.metricServerError({ period: PERIOD }), "5xx"),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "API latency (ms)",
        left: ["p50", "p90", "p99"].map((statistic) =>
          withLabel(api.metricLatency({ period: PERIOD, statistic }), statistic),
        ),
        leftAnnotations: [{ value: props.apiLatencyAlarmMs, label: "p99 alarm" }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "RDS CPU (%) and connections",
        left: [withLabel(props.database.metricCPUUtilization({ period: PERIOD }), "CPU %")],
        right: [withLabel(props.database.metricDatabaseConnections({ period: PERIOD }), "connections")],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 24 }),
    );
  }

  private alarm(id: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, `${id}Alarm`, {
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // No data means no traffic or an empty queue, which is healthy.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...props,
    });
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    alarm.addOkAction(new actions.SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }
}

function withLabel(metric: cloudwatch.IMetric, label: string): cloudwatch.IMetric {
  return metric instanceof cloudwatch.Metric ? metric.with({ label }) : metric;
}

/** "webhook-dispatcher" -> "WebhookDispatcher", for construct ids. */
function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("");
}
