import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleInput,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import type { OutboxSink } from "../../core/outbox/outbox.js";
import { cronExpression, rateExpression } from "../../core/schedules/eventbridge-expression.js";
import type { ScheduleStore } from "../../core/schedules/schedule-store.js";
import {
  type DesiredSchedule,
  type SchedulerPort,
  schedulerSyncSink,
} from "../../core/schedules/scheduler-port.js";

/**
 * What EventBridge Scheduler passes to the schedule-target function (the Target's Input). The
 * <aws.scheduler.*> keywords are replaced by Scheduler at each invocation (context attributes).
 */
export interface ScheduleTargetInput {
  schedule_id: string;
  namespace: string;
  scheduled_time: string;
  execution_id: string;
}

export interface EventBridgeSchedulerOptions {
  client: SchedulerClient;
  groupName: string;
  /** The schedule-target function. */
  targetArn: string;
  /** The role EventBridge Scheduler assumes to invoke it. */
  roleArn: string;
  /** SQS queue for invocations Scheduler gave up on. */
  deadLetterArn: string;
  now?: () => Date;
}

/**
 * A throttled or failed invocation is retried for up to ten minutes; later than that the
 * occurrence is stale (the reaper's safety net fires a missed one within its minute anyway),
 * and what is given up on lands in the dead-letter queue, which is alarmed.
 */
export const SCHEDULE_RETRY_POLICY = { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 600 } as const;

/**
 * The cloud twin of the local scheduler loop: one EventBridge Scheduler schedule per TME schedule,
 * named by its id, in TME's schedule group, invoking the schedule-target function, which fires
 * the schedule from Postgres. EventBridge holds only the timing; what a firing does stays in TME.
 */
export class EventBridgeScheduler implements SchedulerPort {
  private readonly now: () => Date;

  constructor(private readonly options: EventBridgeSchedulerOptions) {
    this.now = options.now ?? (() => new Date());
  }

  static fromEnv(env: Record<string, string | undefined> = process.env, client = new SchedulerClient({})) {
    const missing = [
      "SCHEDULE_GROUP_NAME",
      "SCHEDULE_TARGET_ARN",
      "SCHEDULER_ROLE_ARN",
      "SCHEDULE_DEAD_LETTER_ARN",
    ].filter((k) => !env[k]);
    if (missing.length > 0)
      throw new Error(`environment variables ${missing.join(", ")} are required to sync schedules`);
    return new EventBridgeScheduler({
      client,
      groupName: env.SCHEDULE_GROUP_NAME!,
      targetArn: env.SCHEDULE_TARGET_ARN!,
      roleArn: env.SCHEDULER_ROLE_ARN!,
      deadLetterArn: env.SCHEDULE_DEAD_LETTER_ARN!,
    });
  }

  /** The CreateSchedule/UpdateSchedule input for a desired schedule (the two take the same fields). */
  scheduleInput(desired: Exclude<DesiredSchedule, { state: "absent" }>): CreateScheduleInput {
    const cloud =
      desired.interval_seconds !== null
        ? rateExpression(desired.interval_seconds)
        : cronExpression(desired.cron!);
    if ("unsupported" in cloud) {
      throw new Error(
        `schedule ${desired.schedule_id} cannot run on EventBridge Scheduler: ${cloud.unsupported}`,
      );
    }
    const now = this.now();
    const startAt = desired.start_at ? new Date(desired.start_at) : undefined;
    const endAt = desired.end_at ? new Date(desired.end_at) : undefined;
    // An end already past means the timeline is over: keep the schedule, disabled, rather than
    // send an EndDate the API refuses. A start already past adds nothing and is left out.
    const ended = endAt !== undefined && endAt <= now;
    const target: ScheduleTargetInput = {
      schedule_id: desired.schedule_id,
      namespace: desired.namespace,
      scheduled_time: "<aws.scheduler.scheduled-time>",
      execution_id: "<aws.scheduler.execution-id>",
    };
    return {
      Name: desired.schedule_id,
      GroupName: this.options.groupName,
      Description: `TME schedule ${desired.schedule_id} (namespace ${desired.namespace})`,
      ScheduleExpression: cloud.expression,
      ...(desired.cron !== null ? { ScheduleExpressionTimezone: desired.timezone } : {}),
      ...(startAt && startAt > now ? { StartDate: startAt } : {}),
      ...(endAt && !ended ? { EndDate: endAt } : {}),
      FlexibleTimeWindow: { Mode: "OFF" },
      State: desired.state === "enabled" && !ended ? "ENABLED" : "DISABLED",
      Target: {
        Arn: this.options.targetArn,
        RoleArn: this.options.roleArn,
        Input: JSON.stringify(target),
        RetryPolicy: SCHEDULE_RETRY_POLICY,
        DeadLetterConfig: { Arn: this.options.deadLetterArn },
      },
    };
  }

  async apply(desired: DesiredSchedule): Promise<void> {
    const { client, groupName } = this.options;
    if (desired.state === "absent") {
      try {
        await client.send(new DeleteScheduleCommand({ Name: desired.schedule_id, GroupName: groupName }));
      } catch (error) {
        if (!(error instanceof ResourceNotFoundException)) throw error;
      }
      return;
    }
    const input = this.scheduleInput(desired);
    try {
      await client.send(new CreateScheduleCommand(input));
    } catch (error) {
      // It exists (an earlier sync, a replay): make it match instead.
      if (!(error instanceof ConflictException)) throw error;
      await client.send(new UpdateScheduleCommand(input));
    }
  }
}

/**
 * The cloud outbox sink for scheduler.sync rows: applies each schedule's present state from
 * Postgres (so an out-of-order retry never re-applies a stale one) to EventBridge Scheduler.
 */
export function eventBridgeSchedulerSink(scheduler: SchedulerPort, schedules: ScheduleStore): OutboxSink {
  return schedulerSyncSink(scheduler, (id) => schedules.desiredState(id));
}
