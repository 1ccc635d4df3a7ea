import type { CreateTaskInput } from "../tasks/create-task.js";
/** A recurring source of tasks: when it fires (interval or cron) and what task each firing creates. */
export const OVERLAP_POLICIES = ["skip", "allow", "queue"] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

/** The task each firing creates: the fields of POST /task/create, minus name and run_at. */
export type TaskTemplate = Omit<CreateTaskInput, "name" | "run_at" | "schedule_id">;

export interface Schedule {
  id: string;
  namespace: string;
  /** The name of the tasks it creates (a plugin mapping, or any name when the template has a command). */
  name: string;
  interval_seconds: number | null;
  cron: string | null;
  /** IANA zone the cron expression is read in; "UTC" for intervals. */
  timezone: string;
  start_at: Date | null;
  end_at: Date | null;
  overlap: OverlapPolicy;
  /** false while paused. */
  enabled: boolean;
  task_template: TaskTemplate;
  /** The next occurrence on the timeline; null while paused or once the timeline has ended. */
  next_run_at: Date | null;
  last_fired_at: Date | null;
  last_task_id: string | null;
  fired_count: number;
  skipped_count: number;
  last_skipped_at: Date | null;
  /** overlap "queue": the occurrence held until the unfinished run ends. */
  pending_occurrence_at: Date | null;
  pending_missed_count: number;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

/** The timing part of a schedule: all the pure timeline functions need. */
export interface Timing {
  interval_seconds: number | null;
  cron: string | null;
  timezone: string;
  start_at: Date | null;
  end_at: Date | null;
  /** Where an interval timeline starts when there is no start_at: the schedule's creation. */
  anchor: Date;
}

export function timingOf(schedule: Schedule): Timing {
  return {
    interval_seconds: schedule.interval_seconds,
    cron: schedule.cron,
    timezone: schedule.timezone,
    start_at: schedule.start_at,
    end_at: schedule.end_at,
    anchor: schedule.created_at,
  };
}

export type ScheduleState = "active" | "paused" | "finished";

/** Active while it has occurrences left; finished once end_at (or the cron) leaves none. */
export function stateOf(schedule: Schedule): ScheduleState {
  if (!schedule.enabled) return "paused";
  return schedule.next_run_at === null && schedule.pending_occurrence_at === null ? "finished" : "active";
}

/** The schedule as the API shows it: the fields of POST /schedule plus its state and history. */
export interface ScheduleView {
  id: string;
  schedule_id: string;
  namespace: string;
  name: string;
  interval: number | null;
  cron: string | null;
  timezone: string;
  start_at: string | null;
  end_at: string | null;
  overlap: OverlapPolicy;
  enabled: boolean;
  state: ScheduleState;
  command: string | null;
  description: string | null;
  params: Record<string, unknown>;
  priority: number | null;
  timeout_seconds: number | null;
  max_attempts: number | null;
  labels: Record<string, string>;
  next_run_at: string | null;
  last_fired_at: string | null;
  last_task_id: string | null;
  fired_count: number;
  skipped_count: number;
  last_skipped_at: string | null;
  pending_occurrence_at: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toScheduleView(s: Schedule): ScheduleView {
  const t = s.task_template;
  return {
    id: s.id,
    schedule_id: s.id,
    namespace: s.namespace,
    name: s.name,
    interval: s.interval_seconds,
    cron: s.cron,
    timezone: s.timezone,
    start_at: iso(s.start_at),
    end_at: iso(s.end_at),
    overlap: s.overlap,
    enabled: s.enabled,
    state: stateOf(s),
    command: t.command ?? null,
    description: t.description ?? null,
    params: t.params ?? {},
    // null: the task gets TME's default at firing time (priority 5, default_task_timeout, ...)
    priority: t.priority ?? null,
    timeout_seconds: t.timeout_seconds ?? null,
    max_attempts: t.max_attempts ?? null,
    labels: t.labels ?? {},
    next_run_at: iso(s.next_run_at),
    last_fired_at: iso(s.last_fired_at),
    last_task_id: s.last_task_id,
    fired_count: s.fired_count,
    skipped_count: s.skipped_count,
    last_skipped_at: iso(s.last_skipped_at),
    pending_occurrence_at: iso(s.pending_occurrence_at),
    last_error: s.last_error,
    created_at: s.created_at.toISOString(),
    updated_at: s.updated_at.toISOString(),
  };
}
