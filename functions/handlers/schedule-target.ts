import type { Context } from "aws-lambda";
import * as z from "zod";
import { lambdaHandler } from "../adapters/aws/lambda-telemetry.js";
import { relayAfterChange } from "../cloud/outbox-sinks.js";
import { coldStart } from "../cloud/runtime.js";
import type { AppContext } from "../context.js";
import { fireDueSchedule } from "../core/schedules/fire-schedule.js";

/**
 * How early an invocation may come and still count for the next occurrence. EventBridge
 * Scheduler's rate timeline starts when it creates its schedule, a little after TME's own
 * anchor, and its clock is not ours; occurrences are at least a minute apart in the cloud, so
 * half a minute tells "the invocation for this occurrence" from a duplicate of the last one.
 */
export const EARLY_TOLERANCE_MS = 30_000;

/** The Input TME gives every schedule (functions/adapters/aws/eventbridge-scheduler.ts), as invoked. */
const ScheduleTargetEvent = z.object({
  schedule_id: z.string().min(1),
  namespace: z.string().min(1),
  scheduled_time: z.string().optional(),
  execution_id: z.string().optional(),
});
export type ScheduleTargetEvent = z.infer<typeof ScheduleTargetEvent>;

export interface ScheduleTargetResult {
  schedule_id: string | null;
  outcome: "fired" | "skipped" | "held" | "failed" | "not_due" | "gone" | "invalid_event";
  task_id?: string;
  scheduled_for?: string;
}

/**
 * The schedule-target Lambda for a context: fires the schedule from Postgres with the same core
 * call as the local loop. Scheduler delivers at least once; the locked row and its next_run_at
 * make a duplicate invocation a no-op ("not_due"). Nothing here throws for a schedule that is
 * gone or an event that is malformed: a retry could not fix either.
 */
export function createScheduleTarget(app: AppContext) {
  return async (event: unknown): Promise<ScheduleTargetResult> => {
    const parsed = ScheduleTargetEvent.safeParse(event);
    if (!parsed.success) {
      app.logger.warn(
        { event, issues: parsed.error.issues },
        "schedule-target: not a TME schedule invocation",
      );
      return { schedule_id: null, outcome: "invalid_event" };
    }
    const { schedule_id, namespace, scheduled_time, execution_id } = parsed.data;
    const logger = app.logger.child({ schedule_id, scheduled_time, execution_id });
    const outcome = await app.schedules.withSchedule(namespace, schedule_id, (locked) =>
      fireDueSchedule(
        locked,
        { plugins: app.plugins, config: app.config.app, now: app.now, logger },
        { earlyToleranceMs: EARLY_TOLERANCE_MS },
      ),
    );
    if (outcome === undefined) {
      logger.warn(
        "schedule-target: the schedule is deleted or unknown; its Scheduler entry is being removed",
      );
      return { schedule_id, outcome: "gone" };
    }
    logger.info({ outcome: outcome.kind }, "schedule-target");
    switch (outcome.kind) {
      case "fired":
        return {
          schedule_id,
          outcome: "fired",
          task_id: outcome.task.id,
          scheduled_for: outcome.scheduledFor.toISOString(),
        };
      case "not_due":
        return { schedule_id, outcome: "not_due" };
      default:
        return { schedule_id, outcome: outcome.kind, scheduled_for: outcome.scheduledFor.toISOString() };
    }
  };
}

const setup = coldStart("schedule-target", (app) => ({
  fire: createScheduleTarget(app),
  relay: relayAfterChange(app),
}));

/**
 * Lambda entry: invoked by EventBridge Scheduler with the schedule's Input as the event. The
 * fired task's queue signal is relayed before returning, as the api does after a create: left
 * to the reaper it would wait up to a minute.
 */
export const handler = lambdaHandler("schedule-target", async (event: unknown, _context: Context) => {
  const { fire, relay } = await setup();
  const result = await fire(event);
  if (result.outcome === "fired") await relay();
  return result;
});
