import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { SQSClient } from "@aws-sdk/client-sqs";
import { eventBridgeBusSink } from "../adapters/aws/eventbridge-bus.js";
import { EventBridgeScheduler, eventBridgeSchedulerSink } from "../adapters/aws/eventbridge-scheduler.js";
import { LambdaObserver } from "../adapters/aws/lambda-observer.js";
import { containerTelemetry, tracedAwsClient } from "../adapters/aws/lambda-telemetry.js";
import { sqsTaskQueueSink, taskQueueUrlsFromEnv } from "../adapters/aws/sqs-task-queue.js";
import type { AppContext } from "../context.js";
import { type OutboxSink, relayOutboxBatch } from "../core/outbox/outbox.js";

/**
 * Where outbox messages go in the cloud: queue signals to SQS, events to TME's EventBridge bus,
 * schedule changes to EventBridge Scheduler. A function whose environment lacks a target gets
 * no sink for it; its rows wait for a function that has one (the reaper has all three), and a
 * type no sink accepts is retried, never dropped.
 */
export function cloudOutboxSinks(
  app: AppContext,
  env: Record<string, string | undefined> = process.env,
): OutboxSink[] {
  const sinks: OutboxSink[] = [];
  if (env.TASK_QUEUE_URL_HIGH) {
    sinks.push(sqsTaskQueueSink(taskQueueUrlsFromEnv(env), tracedAwsClient(new SQSClient({}))));
  }
  if (env.EVENT_BUS_NAME) {
    sinks.push(
      eventBridgeBusSink({
        eventBusName: env.EVENT_BUS_NAME,
        client: tracedAwsClient(new EventBridgeClient({})),
        onSentAsReference: (count) => {
          const telemetry = containerTelemetry();
          if (telemetry) new LambdaObserver(telemetry).eventsSentAsReference(count);
        },
      }),
    );
  }
  if (env.SCHEDULE_GROUP_NAME) {
    const scheduler = EventBridgeScheduler.fromEnv(env, tracedAwsClient(new SchedulerClient({})));
    sinks.push(eventBridgeSchedulerSink(scheduler, app.schedules));
  }
  return sinks;
}

/**
 * Relays what a request just wrote, before the Lambda returns, so a new task reaches SQS (and
 * an event the bus) in milliseconds instead of at the reaper's next minute. Best effort: what
 * fails here stays in the outbox for the reaper, so it never fails the request.
 */
export function relayAfterChange(app: AppContext, env: Record<string, string | undefined> = process.env) {
  const sinks = cloudOutboxSinks(app, env);
  return async (): Promise<void> => {
    try {
      await relayOutboxBatch(app.outbox, sinks, 100);
    } catch (error) {
      app.logger.warn({ err: error }, "outbox relay after the request failed; the reaper will retry");
    }
  };
}
