import type { Logger } from "../../logging/logger.js";
import { TmeError } from "../errors.js";
import { newEvent } from "../events/event.js";
import { type CreateTaskDeps, createTask } from "../tasks/create-task.js";
import { type Task, toTaskView } from "../tasks/task.js";
import { type Schedule, timingOf } from "./schedule.js";
import type { LockedSchedule, ScheduleStore } from "./schedule-store.js";
import { latestDueOccurrence, nextOccurrence } from "./timeline.js";

/**
 * What one look at a schedule decides, as a pure function of the schedule, the present and
 * whether its last run is unfinished:
 *
 * - Missed firings (downtime, a stalled loop): every due occurrence up to now folds into ONE
 *   firing of the latest of them; the earlier ones are counted in missed_count. The next run is
 *   the first occurrence after now, on the schedule's own timeline.
 * - overlap "allow": always fire.
 * - overlap "skip" (default): while a task of the schedule is unfinished, the occurrence does not
 *   fire. No schedule.fired event is written (nothing fired); the schedule's skipped_count and
 *   last_skipped_at record it.
 * - overlap "queue": while a task is unfinished, the occurrence is held on the schedule
 *   (pending_occurrence_at) and fires as soon as that task ends. Occurrences arriving while one
 *   is already held fold into it (missed_count), as after downtime: a run slower than its
 *   interval never builds an unbounded backlog, and never runs beside its predecessor.
 */
export type FiringPlan =
  | { kind: "none" }
  | {
      kind: "fire";
      scheduledFor: Date;
      missedCount: number;
      nextRunAt: Date | null;
      trigger: "timeline" | "queued";
    }
  | { kind: "skip"; scheduledFor: Date; missedCount: number; nextRunAt: Date | null }
  | { kind: "hold"; scheduledFor: Date; missedCount: number; nextRunAt: Date | null };

export function planFiring(
  schedule: Schedule,
  now: Date,
  unfinishedRun: boolean,
  earlyToleranceMs = 0,
): FiringPlan {
  if (!schedule.enabled || schedule.deleted_at !== null) return { kind: "none" };
  const due = schedule.next_run_at;
  const pending = schedule.pending_occurrence_at;
  if (due === null || due.getTime() > now.getTime() + earlyToleranceMs) {
    if (pending && !unfinishedRun) {
      return {
        kind: "fire",
        scheduledFor: pending,
        missedCount: schedule.pending_missed_count,
        nextRunAt: due,
        trigger: "queued",
      };
    }
    return { kind: "none" };
  }
  const timing = timingOf(schedule);
  const { occurrence, missed } = latestDueOccurrence(timing, due, now);
  const nextRunAt = nextOccurrence(timing, occurrence > now ? occurrence : now);
  // A held occurrence and a newly due one fold into a single firing.
  const carried = pending ? schedule.pending_missed_count + 1 : 0;
  if (schedule.overlap === "allow" || !unfinishedRun) {
    return {
      kind: "fire",
      scheduledFor: occurrence,
      missedCount: missed + carried,
      nextRunAt,
      trigger: "timeline",
    };
  }
  if (schedule.overlap === "skip")
    return { kind: "skip", scheduledFor: occurrence, missedCount: missed, nextRunAt };
  return { kind: "hold", scheduledFor: occurrence, missedCount: missed + carried, nextRunAt };
}

/**
 * After the clock stepped back (NTP correcting a clock that ran ahead), a next_run_at computed
 * from the wrong time can lie far in the future and the schedule would fall silent until then.
 * The next run is never later than the schedule's first occurrence after now: returns that
 * occurrence when next_run_at is later, else undefined (nothing to change).
 */
export function realignedNextRun(schedule: Schedule, now: Date): Date | undefined {
  if (!schedule.enabled || schedule.deleted_at !== null || schedule.next_run_at === null) return undefined;
  const next = nextOccurrence(timingOf(schedule), now);
  return next !== null && next < schedule.next_run_at ? next : undefined;
}

/** Brings every schedule whose next run lies beyond its first occurrence after now back to it. */
export async function realignSchedules(store: ScheduleStore, now: Date, logger?: Logger): Promise<number> {
  let moved = 0;
  for (const { namespace, id } of await store.activeAfter(now)) {
    await store.withSchedule(namespace, id, async (locked) => {
      const next = realignedNextRun(locked.schedule, now);
      if (!next) return;
      await locked.save({ next_run_at: next });
      moved++;
      logger?.warn(
        { schedule_id: id, was: locked.schedule.next_run_at?.toISOString(), now: next.toISOString() },
        "scheduler: the clock stepped back; next run moved to the schedule's next occurrence",
      );
    });
  }
  return moved;
}

export type FireDeps = Omit<CreateTaskDeps, "tasks"> & { logger?: Logger };

export type FireOutcome =
  | { kind: "fired"; task: Task; scheduledFor: Date; missedCount: number }
  | { kind: "skipped"; scheduledFor: Date; missedCount: number }
  | { kind: "held"; scheduledFor: Date }
  | { kind: "failed"; scheduledFor: Date; error: string }
  | { kind: "not_due" };

/**
 * Creates the schedule's task and its schedule.fired event (in the locked schedule's transaction).
 * firedAt is the instant the scheduler decided to fire, which is what late_ms measures.
 */
async function createRun(
  locked: LockedSchedule,
  deps: FireDeps,
  scheduledFor: Date,
  missedCount: number,
  trigger: "timeline" | "queued" | "manual",
  firedAt: Date,
): Promise<Task> {
  const { schedule } = locked;
  const template = schedule.task_template;
  const { task } = await createTask({ ...deps, tasks: locked.tasks }, schedule.namespace, {
    name: schedule.name,
    command: template.command ?? null,
    description: template.description ?? null,
    params: template.params,
    priority: template.priority,
    timeout_seconds: template.timeout_seconds,
    max_attempts: template.max_attempts,
    labels: template.labels,
    schedule_id: schedule.id,
  });
  await locked.writeEvent(
    newEvent(
      "schedule.fired",
      schedule.namespace,
      {
        schedule_id: schedule.id,
        name: schedule.name,
        task_id: task.id,
        trigger,
        scheduled_for: scheduledFor.toISOString(),
        fired_at: firedAt.toISOString(),
        late_ms: Math.max(0, firedAt.getTime() - scheduledFor.getTime()),
        // Occurrences folded into this one firing (downtime, or waiting behind a run): not run on their own.
        missed_count: missedCount,
        task: toTaskView(task),
      },
      firedAt,
    ),
    task.id,
  );
  return task;
}

/**
 * Fires a locked schedule if it has something due, per planFiring. A template that no longer
 * makes a valid task (its plugin mapping was removed, ...) does not block the schedule: the
 * occurrence is recorded as failed (last_error) and the timeline moves on.
 */
export async function fireDueSchedule(
  locked: LockedSchedule,
  deps: FireDeps,
  options: { earlyToleranceMs?: number } = {},
): Promise<FireOutcome> {
  const { schedule } = locked;
  const now = deps.now();
  const needsRunCheck =
    schedule.overlap !== "allow" &&
    (schedule.pending_occurrence_at !== null ||
      (schedule.next_run_at !== null &&
        schedule.next_run_at.getTime() <= now.getTime() + (options.earlyToleranceMs ?? 0)));
  const unfinished = needsRunCheck ? await locked.hasUnfinishedRun() : false;
  const plan = planFiring(schedule, now, unfinished, options.earlyToleranceMs);
  switch (plan.kind) {
    case "none":
      return { kind: "not_due" };
    case "skip":
      await locked.save({
        next_run_at: plan.nextRunAt,
        skipped_count: schedule.skipped_count + plan.missedCount + 1,
        last_skipped_at: now,
      });
      deps.logger?.info(
        { schedule_id: schedule.id, scheduled_for: plan.scheduledFor.toISOString() },
        "schedule occurrence skipped: its previous run is unfinished (overlap skip)",
      );
      return { kind: "skipped", scheduledFor: plan.scheduledFor, missedCount: plan.missedCount };
    case "hold":
      await locked.save({
        next_run_at: plan.nextRunAt,
        pending_occurrence_at: plan.scheduledFor,
        pending_missed_count: plan.missedCount,
      });
      return { kind: "held", scheduledFor: plan.scheduledFor };
    case "fire": {
      try {
        const task = await createRun(locked, deps, plan.scheduledFor, plan.missedCount, plan.trigger, now);
        await locked.save({
          next_run_at: plan.nextRunAt,
          last_fired_at: now,
          last_task_id: task.id,
          fired_count: schedule.fired_count + 1,
          pending_occurrence_at: null,
          pending_missed_count: 0,
          last_error: null,
        });
        return { kind: "fired", task, scheduledFor: plan.scheduledFor, missedCount: plan.missedCount };
      } catch (error) {
        if (!(error instanceof TmeError)) throw error;
        await locked.save({
          next_run_at: plan.nextRunAt,
          pending_occurrence_at: null,
          pending_missed_count: 0,
          last_error: `${plan.scheduledFor.toISOString()}: ${error.message}`,
        });
        deps.logger?.warn(
          { schedule_id: schedule.id, err: error.message },
          "schedule could not create its task",
        );
        return { kind: "failed", scheduledFor: plan.scheduledFor, error: error.message };
      }
    }
  }
}

/** POST /schedule/{id}/trigger: one run now, whatever the timeline and the overlap policy say. */
export async function triggerSchedule(locked: LockedSchedule, deps: FireDeps): Promise<Task> {
  const now = deps.now();
  const task = await createRun(locked, deps, now, 0, "manual", now);
  await locked.save({
    last_fired_at: now,
    last_task_id: task.id,
    fired_count: locked.schedule.fired_count + 1,
  });
  return task;
}

/**
 * Fires every schedule that has something due at deps.now(), one transaction each. Any number of
 * callers may run this at once (local loops in several processes; in the cloud, a periodic sweep
 * beside Scheduler's invocations): each due row is taken by one of them (SKIP LOCKED) and a
 * firing moves next_run_at on in the same transaction, so an occurrence never fires twice.
 */
export async function fireDueSchedules(
  store: ScheduleStore,
  deps: FireDeps,
  onOutcome?: (scheduleId: string, outcome: FireOutcome) => void,
  shouldStop: () => boolean = () => false,
): Promise<number> {
  // A schedule whose firing throws is set aside for this round, so it cannot starve the others.
  const setAside: string[] = [];
  let handled = 0;
  for (let i = 0; i < 10_000 && !shouldStop(); i++) {
    let current: string | undefined;
    try {
      const done = await store.withDueSchedule(deps.now(), setAside, (locked) => {
        current = locked.schedule.id;
        return fireDueSchedule(locked, deps);
      });
      if (!done) break;
      handled++;
      onOutcome?.(done.id, done.result);
      if (done.result.kind === "not_due") setAside.push(done.id);
    } catch (error) {
      deps.logger?.error({ err: error, schedule_id: current }, "scheduler: firing failed; will retry");
      if (!current) break;
      setAside.push(current);
    }
  }
  return handled;
}
