import { type OutboxSink, type PublishFailure, sinkOfType } from "../outbox/outbox.js";
import type { Schedule } from "./schedule.js";

/** Outbox type of "make the cloud scheduler match this schedule" (payload: DesiredSchedule). */
export const SCHEDULER_SYNC = "scheduler.sync";

/** What the cloud scheduler should hold for one TME schedule. */
export type DesiredSchedule =
  | { schedule_id: string; namespace: string; state: "absent" }
  | {
      schedule_id: string;
      namespace: string;
      state: "enabled" | "disabled";
      interval_seconds: number | null;
      cron: string | null;
      timezone: string;
      start_at: string | null;
      end_at: string | null;
    };

/**
 * Port: a timer service outside TME that invokes the schedule-target handler at a schedule's
 * occurrences (EventBridge Scheduler: functions/adapters/aws/eventbridge-scheduler.ts). Locally
 * there is none: the scheduler loop reads Postgres. Postgres stays the source of truth;
 * apply() is idempotent, so replaying a sync is harmless.
 */
export interface SchedulerPort {
  apply(desired: DesiredSchedule): Promise<void>;
}

export function desiredStateOf(schedule: Schedule): DesiredSchedule {
  if (schedule.deleted_at !== null) {
    return { schedule_id: schedule.id, namespace: schedule.namespace, state: "absent" };
  }
  return {
    schedule_id: schedule.id,
    namespace: schedule.namespace,
    state: schedule.enabled ? "enabled" : "disabled",
    interval_seconds: schedule.interval_seconds,
    cron: schedule.cron,
    timezone: schedule.timezone,
    start_at: schedule.start_at?.toISOString() ?? null,
    end_at: schedule.end_at?.toISOString() ?? null,
  };
}

/**
 * The outbox sink for scheduler.sync rows. A failure leaves the row pending (the relay retries
 * with backoff), so a Scheduler outage delays a change and never loses it.
 *
 * Rows can be retried out of order (an old one failing, a newer one succeeding); `current`
 * re-reads the schedule's present desired state so a late retry can never re-apply a stale
 * one. Without it (tests), the payload is applied as written.
 */
export function schedulerSyncSink(
  port: SchedulerPort,
  current?: (scheduleId: string) => Promise<DesiredSchedule | undefined>,
): OutboxSink {
  return sinkOfType(SCHEDULER_SYNC, "scheduler", async (messages) => {
    const failed: PublishFailure[] = [];
    for (const message of messages) {
      const written = message.payload as DesiredSchedule;
      try {
        const desired = (current ? await current(written.schedule_id) : undefined) ?? written;
        await port.apply(desired);
      } catch (error) {
        failed.push({ id: message.id, error: `${written.schedule_id}: ${(error as Error).message}` });
      }
    }
    return { failed };
  });
}
