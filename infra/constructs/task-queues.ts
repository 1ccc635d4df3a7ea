import { Duration } from "aws-cdk-lib";
import type * as iam from "aws-cdk-lib/aws-iam";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { PRIORITY_CLASSES, type PriorityClass } from "../../functions/config/cloud-environment.js";
import { splitConcurrency } from "../settings.js";
import type { NetworkAndDatabase } from "./network-and-database.js";
import { TmeFunction } from "./tme-function.js";

/** Lambda's ceiling; tasks that need longer must run on the local runtime. */
export const WORKER_TIMEOUT = Duration.minutes(15);
/** Left to the worker after a task's deadline to kill it and record the outcome. */
export const WORKER_MARGIN = Duration.seconds(30);
/** The longest task timeout the cloud accepts (MAX_TASK_TIMEOUT_SECONDS). */
export const MAX_CLOUD_TASK_TIMEOUT_SECONDS = WORKER_TIMEOUT.toSeconds() - WORKER_MARGIN.toSeconds();

/** How much longer than the worker's timeout a received task message stays hidden. */
const VISIBILITY_MARGIN = Duration.minutes(2);

/** Receives before a message is parked in its DLQ. */
export const MAX_RECEIVE_COUNT = 5;

export interface TaskQueuesProps {
  readonly data: NetworkAndDatabase;
  readonly maxConcurrentTasks: number;
}

export interface PriorityQueue {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly maxConcurrency: number;
}

/**
 * One SQS queue per priority class, each with its DLQ, all feeding the worker.
 * The messages only say "task X is ready"; the task itself is in Postgres.
 */
export class TaskQueues extends Construct {
  readonly queues: Record<PriorityClass, PriorityQueue>;
  readonly worker: TmeFunction;

  constructor(scope: Construct, id: string, props: TaskQueuesProps) {
    super(scope, id);
    const split = splitConcurrency(props.maxConcurrentTasks);

    this.worker = new TmeFunction(this, "Worker", {
      name: "worker",
      description: "TME worker: claims a queued task and runs its plugin or command",
      network: { vpc: props.data.vpc, securityGroup: props.data.lambdaSecurityGroup },
      timeout: WORKER_TIMEOUT,
      memorySize: 1024,
      // The cloud's global limit of tasks running at once (MAX_CONCURRENT_TASKS).
      reservedConcurrentExecutions: props.maxConcurrentTasks,
    });

    const classes = Object.keys(PRIORITY_CLASSES) as PriorityClass[];
    this.queues = Object.fromEntries(
      classes.map((priorityClass) => [
        priorityClass,
        this.priorityQueue(priorityClass, split[priorityClass]),
      ]),
    ) as Record<PriorityClass, PriorityQueue>;
  }

  private priorityQueue(priorityClass: PriorityClass, maxConcurrency: number): PriorityQueue {
    const name = priorityClass[0]!.toUpperCase() + priorityClass.slice(1);
    const deadLetterQueue = new sqs.Queue(this, `${name}DeadLetters`, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    const queue = new sqs.Queue(this, `${name}Tasks`, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Just above the worker's timeout, not AWS's usual six times: the six-fold margin
      // covers invocations throttled while holding a message, which maxConcurrency below
      // prevents, and a message the worker hands back as a batch item failure reappears
      // after this delay, so 90 minutes would stall a task that far for a passing error.
      // A duplicate delivery is harmless: the Postgres claim lets only one run.
      visibilityTimeout: WORKER_TIMEOUT.plus(VISIBILITY_MARGIN),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
    this.worker.addEventSource(
      new SqsEventSource(queue, {
        // One task per invocation, so the worker's concurrency counts running tasks.
        batchSize: 1,
        reportBatchItemFailures: true,
        // maxConcurrency keeps the poller from fetching more than the share (unlike
        // throttling by reserved concurrency, which would burn receives towards the DLQ).
        maxConcurrency,
      }),
    );
    return { queue, deadLetterQueue, maxConcurrency };
  }

  /** Lets a function relay outbox rows to any of the task queues. */
  grantSend(grantee: iam.IGrantable): void {
    for (const { queue } of Object.values(this.queues)) queue.grantSendMessages(grantee);
  }
}
