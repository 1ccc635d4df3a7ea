import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import type * as iam from "aws-cdk-lib/aws-iam";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import type { NetworkAndDatabase } from "./network-and-database.js";
import { MAX_RECEIVE_COUNT } from "./task-queues.js";
import { TmeFunction } from "./tme-function.js";

/** The Source of every event TME publishes, and what the fan-out rule matches. */
export const TME_EVENT_SOURCE = "tme";

const DISPATCHER_TIMEOUT = Duration.seconds(60);

export interface EventFanoutProps {
  readonly data: NetworkAndDatabase;
}

/**
 * The custom bus TME publishes task events to, and the path from it to webhook
 * endpoints: bus -> rule -> SQS queue -> webhook-dispatcher. The queue between the rule
 * and the function absorbs bursts and keeps failed batches for retry and the DLQ,
 * where a direct Lambda target would retry only briefly and then drop them.
 */
export class EventFanout extends Construct {
  readonly bus: events.EventBus;
  readonly rule: events.Rule;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  /** Events the rule could not put into the queue at all (e.g. a broken queue policy). */
  readonly undeliveredQueue: sqs.Queue;
  readonly dispatcher: TmeFunction;

  constructor(scope: Construct, id: string, props: EventFanoutProps) {
    super(scope, id);

    this.bus = new events.EventBus(this, "Bus", {
      description: "TME task, schedule and alert events",
    });

    this.deadLetterQueue = new sqs.Queue(this, "WebhookDeadLetters", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // SQS-managed encryption rather than a KMS key: EventBridge can write to it without a
    // key policy, and the events hold task metadata, not secrets.
    this.queue = new sqs.Queue(this, "WebhookEvents", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(DISPATCHER_TIMEOUT.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
    this.undeliveredQueue = new sqs.Queue(this, "UndeliveredEvents", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    NagSuppressions.addResourceSuppressions(this.undeliveredQueue, [
      {
        id: "AwsSolutions-SQS3",
        reason:
          "This queue is itself a dead-letter queue: the DLQ of the bus rule's SQS target (cdk-nag only recognises DLQs named in a queue's redrive policy).",
      },
    ]);

    this.rule = new events.Rule(this, "ToWebhooks", {
      eventBus: this.bus,
      description: "Every TME event goes to the webhook dispatcher, which matches subscriptions",
      eventPattern: { source: [TME_EVENT_SOURCE] },
      targets: [
        new targets.SqsQueue(this.queue, {
          deadLetterQueue: this.undeliveredQueue,
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        }),
      ],
    });

    this.dispatcher = new TmeFunction(this, "Dispatcher", {
      name: "webhook-dispatcher",
      description: "TME webhook dispatcher: delivers events to matching subscriptions, signed",
      network: { vpc: props.data.vpc, securityGroup: props.data.lambdaSecurityGroup },
      timeout: DISPATCHER_TIMEOUT,
    });
    this.dispatcher.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: 10,
        maxBatchingWindow: Duration.seconds(1),
        reportBatchItemFailures: true,
      }),
    );
  }

  /** Lets a function publish to the bus. */
  grantPublish(grantee: iam.IGrantable): void {
    this.bus.grantPutEventsTo(grantee);
  }
}
