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
import { METRIC_NAMESPACE, METRIC_SERVICE, TME_METRICS } from "../../functions/config/cloud-metrics.js";
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
  /** Errors over invocations (or 5xx over requests), percent, that raises a rate alarm. */
  readonly errorRateAlarmPercent: number;
  /** Oldest outbox row not yet relayed (seconds) that raises the outbox alarm. */
  readonly outboxAgeAlarmSeconds: number;
  readonly dbCpuAlarmPercent: number;
  readonly dbConnectionsAlarm: number;
  readonly dbFreeStorageAlarmGiB: number;
  readonly alarmEmail?: string;
}

const PERIOD = Duration.minutes(5);
/** Periods a rate must stay above its threshold: a burst of errors is not an incident. */
const RATE_PERIODS = 3;

/** One of TME's own metrics (functions/config/cloud-metrics.ts), as the handlers write it. */
export function tmeMetric(
  metricName: string,
  props: { statistic?: string; period?: Duration; label?: string } = {},
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRIC_NAMESPACE,
    metricName,
    dimensionsMap: { service: METRIC_SERVICE },
    statistic: props.statistic ?? "Sum",
    period: props.period ?? PERIOD,
    label: props.label,
  });
}

/** 100 * part / whole, 0 when whole is 0 (no traffic is not an error rate). */
function percentOf(
  part: cloudwatch.IMetric,
  whole: cloudwatch.IMetric,
  label: string,
): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: "IF(whole > 0, 100 * part / whole, 0)",
    usingMetrics: { part, whole },
    period: PERIOD,
    label,
  });
}

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

    const rate = props.errorRateAlarmPercent;
    for (const fn of props.functions) {
      this.alarm(`${pascal(fn.tmeName)}ErrorRate`, {
        alarmDescription: `Over ${rate} % of the ${fn.tmeName} function's invocations failed (uncaught errors or timeouts) in each of ${RATE_PERIODS} periods of 5 minutes`,
        metric: percentOf(
          fn.metricErrors({ period: PERIOD, statistic: "Sum" }),
          fn.metricInvocations({ period: PERIOD, statistic: "Sum" }),
          `${fn.tmeName} errors (%)`,
        ),
        threshold: rate,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: RATE_PERIODS,
      });
    }
    this.alarm("WorkerThrottleRate", {
      alarmDescription: `Over ${rate} % of the worker's invocations were throttled in each of ${RATE_PERIODS} periods: the event sources' maximum concurrency exceeds its reserved concurrency, or the account ran out`,
      metric: percentOf(
        props.worker.metricThrottles({ period: PERIOD, statistic: "Sum" }),
        props.worker.metricInvocations({ period: PERIOD, statistic: "Sum" }),
        "worker throttles (%)",
      ),
      threshold: rate,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: RATE_PERIODS,
    });

    const api = props.httpApi.api;
    this.alarm("Api5xxRate", {
      alarmDescription: `Over ${rate} % of the HTTP API's answers were 5xx in each of ${RATE_PERIODS} periods of 5 minutes`,
      metric: percentOf(
        api.metricServerError({ period: PERIOD, statistic: "Sum" }),
        api.metricCount({ period: PERIOD, statistic: "Sum" }),
        "API 5xx (%)",
      ),
      threshold: rate,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: RATE_PERIODS,
    });
    this.alarm("ApiLatencyP99", {
      alarmDescription: `p99 latency of the HTTP API above ${props.apiLatencyAlarmMs} ms for 15 minutes`,
      metric: api.metricLatency({ period: PERIOD, statistic: "p99" }),
      threshold: props.apiLatencyAlarmMs,
      evaluationPeriods: 3,
    });

    const db = props.database;
    this.alarm("DatabaseCpu", {
      alarmDescription: `RDS CPU above ${props.dbCpuAlarmPercent} % for 15 minutes: a larger dbInstanceType, or a query to look at`,
      metric: db.metricCPUUtilization({ period: PERIOD, statistic: "Average" }),
      threshold: props.dbCpuAlarmPercent,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
    });
    this.alarm("DatabaseConnections", {
      alarmDescription: `Over ${props.dbConnectionsAlarm} connections to RDS for 15 minutes: near max_connections of the instance class`,
      metric: db.metricDatabaseConnections({ period: PERIOD, statistic: "Maximum" }),
      threshold: props.dbConnectionsAlarm,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
    });
    this.alarm("DatabaseFreeStorage", {
      alarmDescription: `Under ${props.dbFreeStorageAlarmGiB} GiB free on RDS: storage autoscaling (at 10 % free, up to its maximum) is not keeping up or reached its maximum`,
      metric: db.metricFreeStorageSpace({ period: PERIOD, statistic: "Minimum" }),
      threshold: props.dbFreeStorageAlarmGiB * 1024 ** 3,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 2,
    });

    // Written by the reaper every pass (functions/adapters/aws/lambda-observer.ts reaperPass).
    this.alarm("OutboxAge", {
      alarmDescription: `The oldest outbox row waited over ${props.outboxAgeAlarmSeconds} s to be relayed: tasks are not reaching SQS or events the bus`,
      metric: tmeMetric(TME_METRICS.outboxOldestAge, { statistic: "Maximum", period: Duration.minutes(1) }),
      threshold: props.outboxAgeAlarmSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
    });
    this.alarm("ReaperHeartbeat", {
      alarmDescription:
        "The reaper finished no pass in 3 of the last 5 minutes: expired leases, retries, the outbox relay and schedule sync have stopped",
      metric: tmeMetric(TME_METRICS.reaperRuns, { statistic: "Sum", period: Duration.minutes(1) }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      // No data is the failure this alarm is for.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
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
    const metric = (name: string, label: string, statistic = "Sum") => tmeMetric(name, { statistic, label });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Tasks",
        left: [
          metric(TME_METRICS.tasksCreated, "created"),
          metric(TME_METRICS.attemptsStarted, "attempts started"),
          metric(TME_METRICS.tasksSucceeded, "succeeded"),
          metric(TME_METRICS.tasksFailed, "failed"),
          metric(TME_METRICS.tasksTimedOut, "timed out"),
          metric(TME_METRICS.tasksCancelled, "cancelled"),
          metric(TME_METRICS.attemptsRetrying, "retrying"),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "Queue latency and attempt duration (ms)",
        left: [
          metric(TME_METRICS.queueLatency, "queue latency p50", "p50"),
          metric(TME_METRICS.queueLatency, "queue latency p99", "p99"),
          metric(TME_METRICS.attemptDuration, "attempt p99", "p99"),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "Webhook deliveries",
        left: [
          metric(TME_METRICS.webhooksSucceeded, "succeeded"),
          metric(TME_METRICS.webhooksFailed, "failed"),
        ],
        right: [metric(TME_METRICS.webhookLatency, "latency p99 (ms)", "p99")],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Outbox backlog and oldest age (s)",
        left: [metric(TME_METRICS.outboxBacklog, "backlog", "Maximum")],
        right: [metric(TME_METRICS.outboxOldestAge, "oldest age (s)", "Maximum")],
        rightAnnotations: [{ value: props.outboxAgeAlarmSeconds, label: "alarm" }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "Reaper passes, tasks reaped, late schedules",
        left: [
          metric(TME_METRICS.reaperRuns, "passes"),
          metric(TME_METRICS.tasksReaped, "tasks reaped"),
          metric(TME_METRICS.schedulesLate, "schedules late", "Maximum"),
          metric(TME_METRICS.outboxRelayFailed, "relay failures"),
          metric(TME_METRICS.eventsSentAsReference, "events sent as a reference"),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: "RDS free storage (GiB)",
        left: [
          new cloudwatch.MathExpression({
            expression: "free / 1073741824",
            usingMetrics: { free: db.metricFreeStorageSpace({ period: PERIOD, statistic: "Minimum" }) },
            label: "free GiB",
            period: PERIOD,
          }),
        ],
        leftAnnotations: [{ value: props.dbFreeStorageAlarmGiB, label: "alarm" }],
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
