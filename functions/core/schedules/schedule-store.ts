import type { TmeEvent } from "../events/event.js";
import type { Keyset, KeysetPage } from "../paging.js";
import type { TaskStore } from "../tasks/task-store.js";
import type { Schedule } from "./schedule.js";
import type { DesiredSchedule } from "./scheduler-port.js";

/** A schedule about to be stored. created_at is given, not defaulted: it anchors the timeline. */
export type NewSchedule = Pick<
  Schedule,
  | "id"
  | "namespace"
  | "name"
  | "interval_seconds"
  | "cron"
  | "timezone"
  | "start_at"
  | "end_at"
  | "overlap"
  | "enabled"
  | "task_template"
  | "next_run_at"
  | "created_at"
>;

export type ScheduleChanges = Partial<Omit<Schedule, "id" | "namespace" | "created_at" | "updated_at">>;

/**
 * One schedule, locked, inside one open transaction: everything done through it (the task it
 * creates, its events, its new next_run_at, the scheduler sync) commits together or not at all,
 * so a crash can neither fire an occurrence twice nor lose one.
 */
export interface LockedSchedule {
  readonly schedule: Schedule;
  /** Whether a task this schedule created is still queued, paused, running or retrying. */
  hasUnfinishedRun(): Promise<boolean>;
  /** Tasks, in this same transaction. */
  readonly tasks: TaskStore;
  writeEvent(event: TmeEvent, taskId?: string): Promise<void>;
  /** Applies the changes; with sync, also queues a scheduler.sync of the result (outbox). */
  save(changes: ScheduleChanges, options?: { sync?: boolean }): Promise<Schedule>;
}

export interface ListOptions {
  limit: number;
  /** Keyset cursor: rows strictly older than this (created_at, id), newest first. */
  after?: Keyset;
  name?: string;
}

/** A page of GET /schedule, newest first over (created_at, id); `next` is set when more rows follow. */
export type SchedulePage = KeysetPage<Schedule>;

/** Port: where schedules live. Postgres: functions/adapters/postgres/schedule-repository.ts. */
export interface ScheduleStore {
  /** Stores a new schedule with its scheduler.sync, in one transaction. */
  insert(schedule: NewSchedule): Promise<Schedule>;
  /** A live (not deleted) schedule of the namespace. */
  get(namespace: string, id: string): Promise<Schedule | undefined>;
  list(namespace: string, options: ListOptions): Promise<SchedulePage>;
  /** Locks a live schedule (waiting for other holders) and runs fn; undefined if there is none. */
  withSchedule<T>(
    namespace: string,
    id: string,
    fn: (locked: LockedSchedule) => Promise<T>,
  ): Promise<T | undefined>;
  /**
   * Locks one schedule that has work at `now` (an occurrence due, or a held occurrence whose
   * blocking run has ended), skipping rows another scheduler holds (SKIP LOCKED), and runs fn.
   * Undefined when none is left.
   */
  withDueSchedule<T>(
    now: Date,
    exclude: string[],
    fn: (locked: LockedSchedule) => Promise<T>,
  ): Promise<{ id: string; result: T } | undefined>;
  /** Active schedules whose next_run_at is later than `now` (after the clock stepped back). */
  activeAfter(now: Date): Promise<Array<{ namespace: string; id: string }>>;
  /** The earliest next_run_at of an active schedule: when the local loop should next look. */
  earliestNextRun(): Promise<Date | null>;
  /** What the cloud scheduler should hold for this schedule now (deleted ones: absent). */
  desiredState(id: string): Promise<DesiredSchedule | undefined>;
}
