import { PostgresListener } from "../adapters/postgres/listener.js";
import { SCHEDULE_CHANGED_CHANNEL } from "../adapters/postgres/schedule-repository.js";
import type { AppContext } from "../context.js";
import { sinkOfType } from "../core/outbox/outbox.js";
import { type FireOutcome, fireDueSchedules, realignSchedules } from "../core/schedules/fire-schedule.js";
import { SCHEDULER_SYNC } from "../core/schedules/scheduler-port.js";
import { notifiedLoopService } from "./notified-loop-service.js";
import type { BackgroundService } from "./runtime.js";
import { wakeableLoop } from "./wakeable-loop.js";

/**
 * Locally no timer service holds copies of the schedules (the loop below reads Postgres), so a
 * scheduler.sync row has nowhere to go: relaying it means marking it done. In the cloud the
 * same rows drive EventBridge Scheduler (functions/adapters/aws/eventbridge-scheduler.ts).
 */
export const localSchedulerSink = sinkOfType(SCHEDULER_SYNC, "local-scheduler", async () => ({ failed: [] }));

export interface SchedulerServiceOptions {
  /**
   * Longest sleep between looks. Bounds how late a held (overlap "queue") occurrence notices
   * that its blocking run ended, and how late a missed NOTIFY is noticed.
   */
  maxSleepMs?: number;
  /** Called after each firing decision (tests observe the loop through it). */
  onOutcome?: (scheduleId: string, outcome: FireOutcome) => void;
}

/**
 * The local scheduler: fires every due schedule (one transaction each, SKIP LOCKED, so any number
 * of TME processes on one database fire each occurrence once), then sleeps until the earliest
 * next_run_at, at most maxSleepMs, or until a schedule changes (NOTIFY). Sleeping to the exact
 * instant rather than polling is what keeps 1-second intervals on their timeline.
 */
export function schedulerService(app: AppContext, options: SchedulerServiceOptions = {}): BackgroundService {
  const maxSleepMs = options.maxSleepMs ?? 1000;
  const listener = new PostgresListener(app.databaseUrl, app.logger);
  const fireDeps = { plugins: app.plugins, config: app.config.app, now: app.now, logger: app.logger };
  let timer: NodeJS.Timeout | undefined;
  let lastLook: Date | undefined;

  const sleepMs = async (): Promise<number> => {
    try {
      const next = await app.schedules.earliestNextRun();
      if (!next) return maxSleepMs;
      // +1 ms: a timer that wakes on the boundary must find the occurrence due, not a hair early.
      return Math.max(0, Math.min(maxSleepMs, next.getTime() - app.now().getTime() + 1));
    } catch (error) {
      app.logger.error({ err: error }, "scheduler: cannot read the next run");
      return maxSleepMs;
    }
  };

  const loop = wakeableLoop(
    async (pass) => {
      const now = app.now();
      // Time went backwards by more than a tick: next runs computed before the step may lie
      // beyond the schedules' next occurrences.
      if (lastLook && now.getTime() < lastLook.getTime() - 1000)
        await realignSchedules(app.schedules, now, app.logger);
      lastLook = now;
      await fireDueSchedules(app.schedules, fireDeps, options.onOutcome, () => pass.stopped);
      if (pass.stopped) return;
      const delay = await sleepMs();
      // A change announced while we looked may not be in what we read: the loop looks again first.
      if (pass.stopped || pass.wokenSince) return;
      clearTimeout(timer);
      timer = setTimeout(wake, delay);
    },
    (error) => {
      app.logger.error({ err: error }, "scheduler");
      if (loop.stopped) return;
      clearTimeout(timer);
      timer = setTimeout(wake, maxSleepMs);
    },
  );
  function wake() {
    clearTimeout(timer);
    loop.wake();
  }

  return notifiedLoopService("scheduler", listener, SCHEDULE_CHANGED_CHANNEL, loop, wake, {
    stop: () => clearTimeout(timer),
  });
}
