import type { AppConfig } from "../../config/schema.js";
import type { Principal } from "../auth/api-keys.js";
import { NotFound, ValidationFailed } from "../errors.js";
import { newEvent } from "../events/event.js";
import { newId } from "../ids.js";
import type { PluginResolver } from "../plugins/plugin.js";
import { assertCallerMayRun, prepareTask } from "../tasks/create-task.js";
import { type OverlapPolicy, type Schedule, type TaskTemplate, type Timing, timingOf } from "./schedule.js";
import type { LockedSchedule, ScheduleChanges, ScheduleStore } from "./schedule-store.js";
import { nextOccurrence } from "./timeline.js";
import { validateTiming } from "./validation.js";

/** POST /schedule's body (validated for shape by the route's zod schema). */
export interface ScheduleInput extends TaskTemplate {
  name: string;
  interval?: number;
  cron?: string;
  timezone?: string;
  start_at?: Date | null;
  end_at?: Date | null;
  overlap?: OverlapPolicy;
  enabled?: boolean;
}

/** PATCH /schedule/{id}: any field of ScheduleInput; null clears an optional one. */
export type SchedulePatch = {
  [K in keyof Omit<ScheduleInput, "name" | "overlap" | "enabled">]?: ScheduleInput[K] | null;
} & {
  name?: string;
  overlap?: OverlapPolicy;
  enabled?: boolean;
};

export interface ManageDeps {
  plugins: PluginResolver;
  config: Pick<AppConfig, "default_task_timeout" | "max_task_timeout" | "default_max_attempts">;
  runtime: "local" | "cloud";
  now: () => Date;
  /** Who asks: a template some plugin guards (clean_logs of all namespaces) needs its scope. */
  caller?: Principal;
}

const TEMPLATE_FIELDS = [
  "command",
  "description",
  "params",
  "priority",
  "timeout_seconds",
  "max_attempts",
  "labels",
] as const;

function templateOf(input: Partial<Record<(typeof TEMPLATE_FIELDS)[number], unknown>>): TaskTemplate {
  const template: Record<string, unknown> = {};
  for (const field of TEMPLATE_FIELDS) {
    if (input[field] !== undefined && input[field] !== null) template[field] = input[field];
  }
  return template as TaskTemplate;
}

/** A schedule's task must be creatable now: the same checks as POST /task/create (422 / 400). */
function validateTemplate(deps: ManageDeps, name: string, template: TaskTemplate): void {
  prepareTask(deps, { name, ...template });
}

/** Creates a schedule; its first run is the first occurrence after now (or start_at). */
export async function createSchedule(
  store: ScheduleStore,
  deps: ManageDeps,
  namespace: string,
  input: ScheduleInput,
): Promise<Schedule> {
  const now = deps.now();
  const timing: Timing = {
    interval_seconds: input.interval ?? null,
    cron: input.cron?.trim() ?? null,
    timezone: input.timezone ?? "UTC",
    start_at: input.start_at ?? null,
    end_at: input.end_at ?? null,
    anchor: now,
  };
  validateTiming(timing, now, deps.runtime);
  const template = templateOf(input);
  validateTemplate(deps, input.name, template);
  const enabled = input.enabled ?? true;
  return store.insert({
    id: newId("sch"),
    namespace,
    name: input.name,
    interval_seconds: timing.interval_seconds,
    cron: timing.cron,
    timezone: timing.timezone,
    start_at: timing.start_at,
    end_at: timing.end_at,
    overlap: input.overlap ?? "skip",
    enabled,
    task_template: template,
    next_run_at: enabled ? nextOccurrence(timing, now) : null,
    created_at: now,
  });
}

async function locked<T>(
  store: ScheduleStore,
  namespace: string,
  id: string,
  fn: (locked: LockedSchedule) => Promise<T>,
): Promise<T> {
  const result = await store.withSchedule(namespace, id, fn);
  if (result === undefined) throw new NotFound("schedule", id);
  return result;
}

/**
 * Saves a pause or a resume (synced, so the cloud's scheduler follows) and writes its event,
 * which names the schedule as saved and adds `data` of it.
 */
async function saveToggle(
  l: LockedSchedule,
  fields: Parameters<LockedSchedule["save"]>[0],
  type: "schedule.paused" | "schedule.resumed",
  now: Date,
  data: (saved: Schedule) => Record<string, unknown> = () => ({}),
): Promise<Schedule> {
  const saved = await l.save(fields, { sync: true });
  await l.writeEvent(
    newEvent(type, saved.namespace, { schedule_id: saved.id, name: saved.name, ...data(saved) }, now),
  );
  return saved;
}

/** Pausing stops firings (and drops an occurrence held by overlap "queue"). */
async function pauseLocked(
  l: LockedSchedule,
  deps: ManageDeps,
  changes: ScheduleChanges = {},
): Promise<Schedule> {
  const paused = { enabled: false, next_run_at: null, pending_occurrence_at: null, pending_missed_count: 0 };
  return saveToggle(l, { ...changes, ...paused }, "schedule.paused", deps.now());
}

/** Resuming restarts at the first occurrence after now: occurrences missed while paused never burst out. */
async function resumeLocked(
  l: LockedSchedule,
  deps: ManageDeps,
  changes: ScheduleChanges = {},
): Promise<Schedule> {
  const now = deps.now();
  const timing = { ...timingOf(l.schedule), ...timingChanges(changes) };
  return saveToggle(
    l,
    { ...changes, enabled: true, next_run_at: nextOccurrence(timing, now) },
    "schedule.resumed",
    now,
    (saved) => ({ next_run_at: saved.next_run_at?.toISOString() ?? null }),
  );
}

function timingChanges(changes: ScheduleChanges): Partial<Timing> {
  const timing: Partial<Timing> = {};
  for (const key of ["interval_seconds", "cron", "timezone", "start_at", "end_at"] as const) {
    if (key in changes) (timing as Record<string, unknown>)[key] = changes[key];
  }
  return timing;
}

export function pauseSchedule(store: ScheduleStore, deps: ManageDeps, namespace: string, id: string) {
  return locked(store, namespace, id, (l) =>
    l.schedule.enabled ? pauseLocked(l, deps) : Promise.resolve(l.schedule),
  );
}

export function resumeSchedule(store: ScheduleStore, deps: ManageDeps, namespace: string, id: string) {
  return locked(store, namespace, id, (l) =>
    l.schedule.enabled ? Promise.resolve(l.schedule) : resumeLocked(l, deps),
  );
}

/** Soft delete: the schedule stops and answers 404; the tasks it created stay. */
export function deleteSchedule(store: ScheduleStore, deps: ManageDeps, namespace: string, id: string) {
  return locked(store, namespace, id, (l) =>
    l.save(
      { deleted_at: deps.now(), next_run_at: null, pending_occurrence_at: null, pending_missed_count: 0 },
      { sync: true },
    ),
  );
}

/**
 * PATCH: the merged schedule must pass the same checks as a new one. A change of timing restarts
 * the timeline at the first occurrence after now; `enabled` pauses or resumes (with their events).
 */
export function updateSchedule(
  store: ScheduleStore,
  deps: ManageDeps,
  namespace: string,
  id: string,
  patch: SchedulePatch,
): Promise<Schedule> {
  return locked(store, namespace, id, async (l) => {
    const current = l.schedule;
    const now = deps.now();
    if (patch.interval != null && patch.cron != null) {
      throw new ValidationFailed("give interval or cron, not both", [
        { path: "interval", message: "give exactly one of interval and cron" },
      ]);
    }
    const changes: ScheduleChanges = {};
    if (patch.name !== undefined) changes.name = patch.name;
    if (patch.interval != null) {
      changes.interval_seconds = patch.interval;
      changes.cron = null;
      changes.timezone = patch.timezone ?? "UTC";
    } else if (patch.cron != null) {
      changes.cron = patch.cron.trim();
      changes.interval_seconds = null;
      changes.timezone = patch.timezone ?? (current.cron !== null ? current.timezone : "UTC");
    } else if (patch.timezone !== undefined) {
      changes.timezone = patch.timezone ?? "UTC";
    }
    if (patch.interval === null && patch.cron == null && current.interval_seconds !== null) {
      changes.interval_seconds = null;
    }
    if (patch.cron === null && patch.interval == null && current.cron !== null) {
      // The zone went with the cron: the refusal should name the missing timing, not the zone.
      changes.cron = null;
      changes.timezone = "UTC";
    }
    if (patch.start_at !== undefined) changes.start_at = patch.start_at;
    if (patch.end_at !== undefined) changes.end_at = patch.end_at;
    if (patch.overlap !== undefined) {
      changes.overlap = patch.overlap;
      if (patch.overlap !== "queue") {
        changes.pending_occurrence_at = null;
        changes.pending_missed_count = 0;
      }
    }

    const timing: Timing = { ...timingOf(current), ...timingChanges(changes) };
    const timingChanged = Object.keys(timingChanges(changes)).length > 0;
    if (timingChanged) validateTiming(timing, now, deps.runtime);

    const hasTemplateChange = TEMPLATE_FIELDS.some((f) => patch[f] !== undefined);
    if (hasTemplateChange || changes.name !== undefined) {
      const merged: Record<string, unknown> = { ...current.task_template };
      for (const field of TEMPLATE_FIELDS) {
        if (patch[field] === null) delete merged[field];
        else if (patch[field] !== undefined) merged[field] = patch[field];
      }
      const template = templateOf(merged);
      validateTemplate(deps, changes.name ?? current.name, template);
      changes.task_template = template;
    } else if (deps.caller) {
      // Changing only the timing of a guarded schedule still needs what creating it needed.
      assertCallerMayRun(deps.plugins, deps.caller, { name: current.name, ...current.task_template });
    }

    if (patch.enabled === false && current.enabled) return pauseLocked(l, deps, changes);
    if (patch.enabled === true && !current.enabled) return resumeLocked(l, deps, changes);
    if (timingChanged && current.enabled) changes.next_run_at = nextOccurrence(timing, now);
    return l.save(changes, { sync: timingChanged });
  });
}
