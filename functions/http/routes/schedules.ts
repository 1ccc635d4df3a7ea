import * as z from "zod";
import type { AppContext } from "../../context.js";
import type { Principal, Scope } from "../../core/auth/api-keys.js";
import { NotFound } from "../../core/errors.js";
import { triggerSchedule } from "../../core/schedules/fire-schedule.js";
import {
  createSchedule,
  deleteSchedule,
  type ManageDeps,
  pauseSchedule,
  resumeSchedule,
  type SchedulePatch,
  updateSchedule,
} from "../../core/schedules/manage-schedules.js";
import { OVERLAP_POLICIES, toScheduleView } from "../../core/schedules/schedule.js";
import { MAX_INTERVAL_SECONDS } from "../../core/schedules/validation.js";
import { toTaskView } from "../../core/tasks/task.js";
import { decodeKeysetCursor, nextCursorHeader, PageQueryFields } from "../cursor.js";
import { errorResponse, response } from "../openapi.js";
import { defineRoute } from "../route.js";
import { actionRoute } from "./action-route.js";
import {
  EmptyBody,
  Labels,
  MAX_COMMAND_LENGTH,
  MAX_DESCRIPTION_LENGTH,
  MaxAttempts,
  Params,
  Priority,
  TimeoutSeconds,
} from "./task-schemas.js";

const READ_SCOPES: readonly Scope[] = ["tasks:read", "schedules:write"];
const TAGS = ["schedules"];

/** The task each firing creates: the same fields and limits as POST /task/create (name is the schedule's). */
const templateFields = {
  command: z
    .string()
    .min(1)
    .max(MAX_COMMAND_LENGTH)
    .describe("command for the shell plugin (when no plugin is mapped to name)"),
  description: z.string().max(MAX_DESCRIPTION_LENGTH),
  params: Params,
  priority: Priority,
  timeout_seconds: TimeoutSeconds,
  max_attempts: MaxAttempts,
  labels: Labels,
};

/** As POST /task/create's run_at, with one clear message for a value that is not a timestamp at all. */
const Timestamp = z.iso
  .datetime({ offset: true, message: "must be an ISO 8601 timestamp with a time zone", abort: true })
  .refine((s) => {
    const year = new Date(s).getUTCFullYear();
    return year >= 1970 && year <= 9999;
  }, "must be a real date between 1970 and 9999");

const Interval = z
  .number()
  .int("must be an integer (seconds)")
  .min(1, "must be >= 1")
  .max(MAX_INTERVAL_SECONDS, `must be <= ${MAX_INTERVAL_SECONDS}`);

const CreateScheduleBody = z
  .object({
    name: z.string().min(1).max(200).describe("the name of the tasks it creates"),
    interval: Interval.describe("seconds; or cron"),
    cron: z.string().min(1).max(200).describe('5 fields: "minute hour day-of-month month day-of-week"'),
    timezone: z.string().min(1).max(100).describe("IANA zone the cron is read in (default UTC)"),
    start_at: Timestamp.describe("no firing before; an interval timeline starts here"),
    end_at: Timestamp.describe("no firing after"),
    overlap: z
      .enum(OVERLAP_POLICIES)
      .describe("skip (default): no new run while the last is unfinished; allow; queue: run after it"),
    enabled: z.boolean().describe("false creates it paused"),
    ...templateFields,
  })
  .partial()
  .required({ name: true })
  .strict();

const nullable = <T extends z.ZodType>(schema: T) => schema.nullable().optional();
const PatchScheduleBody = z
  .object({
    name: z.string().min(1).max(200).optional(),
    interval: nullable(Interval),
    cron: nullable(z.string().min(1).max(200)),
    timezone: nullable(z.string().min(1).max(100)),
    start_at: nullable(Timestamp),
    end_at: nullable(Timestamp),
    overlap: z.enum(OVERLAP_POLICIES).optional(),
    enabled: z.boolean().optional(),
    command: nullable(templateFields.command),
    description: nullable(templateFields.description),
    params: nullable(templateFields.params),
    priority: nullable(templateFields.priority),
    timeout_seconds: nullable(templateFields.timeout_seconds),
    max_attempts: nullable(templateFields.max_attempts),
    labels: nullable(templateFields.labels),
  })
  .strict();

export const ScheduleViewSchema = z.object({
  id: z.string(),
  schedule_id: z.string(),
  namespace: z.string(),
  name: z.string(),
  interval: z.number().nullable(),
  cron: z.string().nullable(),
  timezone: z.string(),
  start_at: z.string().nullable(),
  end_at: z.string().nullable(),
  overlap: z.enum(OVERLAP_POLICIES),
  enabled: z.boolean(),
  state: z.enum(["active", "paused", "finished"]),
  command: z.string().nullable(),
  description: z.string().nullable(),
  params: z.record(z.string(), z.unknown()),
  priority: z.number().nullable(),
  timeout_seconds: z.number().nullable(),
  max_attempts: z.number().nullable(),
  labels: z.record(z.string(), z.string()),
  next_run_at: z.string().nullable().describe("the next occurrence; null while paused or once finished"),
  last_fired_at: z.string().nullable(),
  last_task_id: z.string().nullable(),
  fired_count: z.number(),
  skipped_count: z
    .number()
    .describe("occurrences not run because the last run was unfinished (overlap skip)"),
  last_skipped_at: z.string().nullable(),
  pending_occurrence_at: z
    .string()
    .nullable()
    .describe("overlap queue: the occurrence waiting for the last run"),
  last_error: z.string().nullable().describe("why the last firing could not create its task"),
  created_at: z.string(),
  updated_at: z.string(),
});

const ScheduleParams = z.object({ schedule_id: z.string().min(1).max(100) }).strict();

const ListQuery = z
  .object({
    ...PageQueryFields,
    name: z.string().min(1).max(200).optional(),
  })
  .strict();

const TriggerResult = z.object({
  schedule_id: z.string(),
  task_id: z.string(),
  task: z.record(z.string(), z.unknown()),
});

const notFound = errorResponse("No such schedule in this namespace");

function store(app: AppContext) {
  // Inside an Idempotency-Key request app is rebound (inTransaction), so this joins its transaction.
  return app.schedules;
}

function deps(app: AppContext, req?: { principal?: Principal }): ManageDeps {
  return {
    plugins: app.plugins,
    config: app.config.app,
    runtime: app.config.runtime,
    now: app.now,
    caller: req?.principal,
  };
}

const toDate = (value: string | null | undefined) =>
  value === undefined ? undefined : value === null ? null : new Date(value);

const SCHEDULE_ACTIONS = {
  pause: {
    run: pauseSchedule,
    summary: "Pause a schedule (emits schedule.paused)",
    description:
      "No firing until resumed; an occurrence held by overlap `queue` is dropped. Pausing a paused one is a no-op.",
    result: "The paused schedule",
  },
  resume: {
    run: resumeSchedule,
    summary: "Resume a paused schedule (emits schedule.resumed)",
    description:
      "Firing restarts at the first occurrence after now: occurrences that fell while it was paused do not burst out.",
    result: "The resumed schedule",
  },
} as const;

/** POST /schedule/{schedule_id}/pause and /resume: the schedule after the action. */
function scheduleActionRoute(action: keyof typeof SCHEDULE_ACTIONS) {
  const { run, summary, description, result } = SCHEDULE_ACTIONS[action];
  return actionRoute(`/schedule/{schedule_id}/${action}`, `schedule.${action}`, {
    scope: "schedules:write",
    params: ScheduleParams,
    docs: {
      summary,
      tags: TAGS,
      description,
      responses: { 200: { description: result, schema: ScheduleViewSchema }, 404: notFound },
    },
    act: async (req, app) =>
      toScheduleView(await run(store(app), deps(app), req.namespace, req.params.schedule_id)),
  });
}

export const scheduleRoutes = [
  defineRoute({
    method: "POST",
    path: "/schedule",
    scope: "schedules:write",
    body: CreateScheduleBody,
    idempotent: true,
    auditAction: "schedule.create",
    docs: {
      summary: "Create a recurring schedule (interval or cron)",
      tags: TAGS,
      description:
        "Exactly one of `interval` (seconds, integer >= 1) and `cron` (5 fields, read in `timezone`). Each firing " +
        "creates a task with `schedule_id` set and emits `schedule.fired`. The task template is checked now: a name " +
        "with no plugin and no command, or params that do not fit the plugin, is 422. The cloud runtime " +
        "(EventBridge Scheduler) refuses intervals under 60 s and cron forms it cannot express with 422.",
      responses: {
        201: response("Created", ScheduleViewSchema),
        422: errorResponse("Valid JSON, but not a schedule TME can run"),
      },
    },
    async handle(req, app) {
      const body = req.body;
      const schedule = await createSchedule(store(app), deps(app, req), req.namespace, {
        ...body,
        start_at: toDate(body.start_at),
        end_at: toDate(body.end_at),
      });
      return { status: 201, body: toScheduleView(schedule) };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/schedule",
    scope: READ_SCOPES,
    query: ListQuery,
    docs: {
      summary: "List schedules, newest first",
      tags: TAGS,
      description:
        "Pages with `limit` and `cursor`; the next page's cursor is in the `X-Next-Cursor` header.",
      responses: { 200: response("Schedules", z.array(ScheduleViewSchema)) },
    },
    async handle(req, app) {
      const page = await store(app).list(req.namespace, {
        limit: req.query.limit,
        // An empty cursor= is a first page here, as it always was.
        after: decodeKeysetCursor(req.query.cursor || undefined),
        name: req.query.name,
      });
      return { status: 200, body: page.rows.map(toScheduleView), headers: nextCursorHeader(page.next) };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/schedule/{schedule_id}",
    scope: READ_SCOPES,
    params: ScheduleParams,
    docs: {
      summary: "A schedule",
      tags: TAGS,
      responses: { 200: response("The schedule", ScheduleViewSchema), 404: notFound },
    },
    async handle(req, app) {
      const schedule = await store(app).get(req.namespace, req.params.schedule_id);
      if (!schedule) throw new NotFound("schedule", req.params.schedule_id);
      return { status: 200, body: toScheduleView(schedule) };
    },
  }),
  defineRoute({
    method: "PATCH",
    path: "/schedule/{schedule_id}",
    scope: "schedules:write",
    params: ScheduleParams,
    body: PatchScheduleBody,
    auditAction: "schedule.update",
    docs: {
      summary: "Change a schedule",
      tags: TAGS,
      description:
        "Any field of POST /schedule; null clears an optional one. The result must pass the same checks as a new " +
        "schedule. A change of timing restarts the timeline at the first occurrence after now; `enabled` pauses " +
        "or resumes.",
      responses: {
        200: response("The updated schedule", ScheduleViewSchema),
        404: notFound,
        422: errorResponse("Not a schedule TME can run"),
      },
    },
    async handle(req, app) {
      const body = req.body;
      const patch: SchedulePatch = { ...body, start_at: toDate(body.start_at), end_at: toDate(body.end_at) };
      const schedule = await updateSchedule(
        store(app),
        deps(app, req),
        req.namespace,
        req.params.schedule_id,
        patch,
      );
      return { status: 200, body: toScheduleView(schedule) };
    },
  }),
  defineRoute({
    method: "DELETE",
    path: "/schedule/{schedule_id}",
    scope: "schedules:write",
    params: ScheduleParams,
    auditAction: "schedule.delete",
    docs: {
      summary: "Delete a schedule",
      tags: TAGS,
      description: "It stops firing and answers 404 from now on; the tasks it created stay.",
      responses: { 204: response("Deleted"), 404: notFound },
    },
    async handle(req, app) {
      await deleteSchedule(store(app), deps(app), req.namespace, req.params.schedule_id);
      return { status: 204 };
    },
  }),
  scheduleActionRoute("pause"),
  scheduleActionRoute("resume"),
  defineRoute({
    method: "POST",
    path: "/schedule/{schedule_id}/trigger",
    scope: "schedules:write",
    params: ScheduleParams,
    body: EmptyBody,
    idempotent: true,
    auditAction: "schedule.trigger",
    docs: {
      summary: "Fire a schedule once, now",
      tags: TAGS,
      description:
        "Creates one task from the template now, whatever the timeline, the overlap policy or a pause say; " +
        "the timeline is unchanged. Emits schedule.fired with trigger `manual`.",
      responses: {
        201: response("The task it created", TriggerResult),
        404: notFound,
        422: errorResponse("The template no longer makes a valid task"),
      },
    },
    async handle(req, app) {
      const task = await store(app).withSchedule(req.namespace, req.params.schedule_id, (locked) =>
        triggerSchedule(locked, {
          plugins: app.plugins,
          config: app.config.app,
          now: app.now,
          logger: req.logger,
          caller: req.principal,
        }),
      );
      if (!task) throw new NotFound("schedule", req.params.schedule_id);
      return {
        status: 201,
        body: { schedule_id: req.params.schedule_id, task_id: task.id, task: toTaskView(task) },
      };
    },
  }),
];
