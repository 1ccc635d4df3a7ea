import * as z from "zod";
import { CONTROL_ACTIONS } from "../../core/tasks/control-plan.js";
import { TASK_STATUSES, type TaskStatus } from "../../core/tasks/task.js";
import type { TaskFilter } from "../../core/tasks/task-control-store.js";
import { CursorQuery } from "../cursor.js";

/**
 * The zod schemas of the task API: they validate requests (strict: an unknown field is a 400)
 * and generate /openapi.json. Strings that Postgres cannot store (NUL, lone surrogates) and
 * JSON nested too deep are refused before these run (functions/http/safe-input.ts).
 */

export const MAX_COMMAND_LENGTH = 8192;
export const MAX_DESCRIPTION_LENGTH = 10_000;
export const MAX_LABELS = 50;
export const MAX_LABEL_VALUE_LENGTH = 500;
export const LABEL_KEY_PATTERN = /^[A-Za-z0-9_./-]{1,100}$/;

export const TaskName = z
  .string()
  .min(1)
  .max(200)
  .meta({ description: "The task type: picks the plugin (task_plugins.yaml)", example: "backup_data" });

export const Priority = z.number().int().min(0).max(9).meta({ description: "0..9, higher runs first" });

export const Timestamp = z.iso
  // abort: a string that is no date-time at all gets that one message, not the range's too.
  .datetime({ offset: true, abort: true })
  .refine((s) => {
    const year = new Date(s).getUTCFullYear();
    return year >= 1970 && year <= 9999;
  }, "must be a real date between 1970 and 9999")
  .meta({ description: "ISO 8601 date-time with Z or an offset", example: "2026-12-01T00:00:00Z" });

export const Labels = z
  .record(
    z.string().regex(LABEL_KEY_PATTERN, "label keys are 1..100 of A-Z a-z 0-9 _ . / -"),
    z.string().max(MAX_LABEL_VALUE_LENGTH),
  )
  .refine((labels) => Object.keys(labels).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`)
  .meta({ description: "String labels to filter by", example: { team: "ops" } });

export const Params = z.record(z.string(), z.unknown()).meta({
  description: "A JSON object for the plugin, checked against its params schema (422 if it does not fit)",
});

export const TimeoutSeconds = z.number().int().min(1).max(2_147_483_647).meta({
  description: "Seconds an attempt may run; default default_task_timeout, at most max_task_timeout",
});
export const MaxAttempts = z.number().int().min(1).max(100);
const Description = z.string().max(MAX_DESCRIPTION_LENGTH).nullable();

export const CreateTaskBody = z
  .strictObject({
    name: TaskName,
    command: z.string().min(1).max(MAX_COMMAND_LENGTH).nullable().optional().meta({
      description: "A command for the shell plugin; needed unless a plugin is mapped to the name",
    }),
    description: Description.optional(),
    params: Params.optional(),
    priority: Priority.optional(),
    timeout_seconds: TimeoutSeconds.optional(),
    max_attempts: MaxAttempts.optional(),
    run_at: Timestamp.optional().meta({ description: "Not before this instant (a delayed task)" }),
    labels: Labels.optional(),
  })
  .meta({ id: "CreateTask" });

export const UpdateTaskBody = z
  .strictObject({
    description: Description.optional(),
    priority: Priority.optional(),
    labels: Labels.optional().meta({ description: "Replaces all labels" }),
    timeout_seconds: TimeoutSeconds.optional().meta({ description: "Applies from the next attempt" }),
    max_attempts: MaxAttempts.optional(),
    run_at: Timestamp.optional().meta({ description: "Only while queued, paused or retrying" }),
    status: z.enum(["paused", "queued", "cancelled"]).optional().meta({
      description: 'An action: "paused" pauses, "queued" resumes, "cancelled" cancels; illegal ones are 409',
    }),
  })
  .refine((body) => Object.keys(body).length > 0, "give at least one field to change")
  .meta({ id: "UpdateTask" });

/** Bodyless actions still take a JSON body or none, so a typo'd field is caught, not ignored. */
export const EmptyBody = z.strictObject({}).meta({ description: "No fields; send no body or {}" });

export const TaskIdParams = z.strictObject({ task_id: z.string().min(1).max(200) });
export const TaskTypeParams = z.strictObject({ name: TaskName });

const Limit = z.coerce
  .number()
  .int()
  .min(1)
  .max(500)
  .optional()
  .meta({ description: "Page size, default 50" });
const Cursor = CursorQuery;

const STATUS_SET = new Set<string>(TASK_STATUSES);

function statusList(value: string | string[]): string[] {
  return (Array.isArray(value) ? value : value.split(",")).map((s) => s.trim()).filter(Boolean);
}

const StatusListString = z.string().superRefine((value, ctx) => {
  const unknown = statusList(value).filter((s) => !STATUS_SET.has(s));
  if (unknown.length > 0 || statusList(value).length === 0) {
    ctx.addIssue({ code: "custom", message: `statuses are a comma list of ${TASK_STATUSES.join(", ")}` });
  }
});

/** key:value, split at the first colon; the key follows the label key rules. */
function parseLabelPair(pair: string): [string, string] | undefined {
  const colon = pair.indexOf(":");
  if (colon < 1) return undefined;
  const key = pair.slice(0, colon);
  return LABEL_KEY_PATTERN.test(key) ? [key, pair.slice(colon + 1)] : undefined;
}

/**
 * A repeated ?label= arrives joined with commas (API Gateway's and our edge's rule); split only
 * at commas that start a new "key:" so values may hold commas unless followed by "key:".
 */
function splitLabelQuery(value: string): string[] {
  return value.split(/,(?=[A-Za-z0-9_./-]{1,100}:)/);
}

const LabelQuery = z.string().superRefine((value, ctx) => {
  if (splitLabelQuery(value).some((p) => !parseLabelPair(p))) {
    ctx.addIssue({ code: "custom", message: "label filters are key:value (repeat label= for several)" });
  }
});

export const ListTasksQuery = z
  .strictObject({
    status: StatusListString.optional().meta({
      description: "Comma list of statuses",
      example: "failed,timed_out",
    }),
    name: TaskName.optional(),
    label: LabelQuery.optional().meta({ description: "key:value; repeat for several (all must match)" }),
    schedule_id: z.string().min(1).max(200).optional(),
    created_after: Timestamp.optional(),
    created_before: Timestamp.optional(),
    limit: Limit,
    cursor: Cursor,
  })
  .meta({ id: "ListTasksQuery" });

export const PageQuery = z.strictObject({ limit: Limit, cursor: Cursor });

export const BulkPreviewQuery = ListTasksQuery.omit({ limit: true, cursor: true })
  .extend({ action: z.enum(CONTROL_ACTIONS) })
  .refine(
    ({ action: _, ...filter }) => Object.keys(filter).length > 0,
    "give at least one filter; an empty filter would select every task",
  )
  .meta({ id: "BulkTaskActionPreviewQuery" });

const FilterBody = z
  .strictObject({
    status: z
      .union([z.array(z.enum(TASK_STATUSES)).min(1), StatusListString])
      .optional()
      .meta({ description: "Statuses (array or comma list)" }),
    name: TaskName.optional(),
    label: z
      .union([z.array(LabelQuery).min(1), LabelQuery])
      .optional()
      .meta({ description: "key:value pairs (array or one string); all must match" }),
    schedule_id: z.string().min(1).max(200).optional(),
    created_after: Timestamp.optional(),
    created_before: Timestamp.optional(),
  })
  .refine(
    (f) => Object.keys(f).length > 0,
    "give at least one filter; an empty filter would select every task",
  )
  .meta({ description: "The filters of GET /tasks" });

export const BulkActionBody = z
  .strictObject({ action: z.enum(CONTROL_ACTIONS), filter: FilterBody })
  .meta({ id: "BulkTaskAction" });

type FilterInput = {
  status?: string | string[];
  name?: string;
  label?: string | string[];
  schedule_id?: string;
  created_after?: string;
  created_before?: string;
};

/** The validated query or filter body as the store's TaskFilter. */
export function toTaskFilter(input: FilterInput): TaskFilter {
  const filter: TaskFilter = {};
  if (input.status !== undefined) filter.status = statusList(input.status) as TaskStatus[];
  if (input.name !== undefined) filter.name = input.name;
  if (input.label !== undefined) {
    const pairs = (Array.isArray(input.label) ? input.label : [input.label]).flatMap(splitLabelQuery);
    filter.labels = Object.fromEntries(pairs.map((p) => parseLabelPair(p)!));
  }
  if (input.schedule_id !== undefined) filter.schedule_id = input.schedule_id;
  if (input.created_after !== undefined) filter.created_after = new Date(input.created_after);
  if (input.created_before !== undefined) filter.created_before = new Date(input.created_before);
  return filter;
}

// Responses: what the API returns, documented in /openapi.json.

const IsoTime = z.string().meta({ description: "ISO 8601 UTC", example: "2026-01-01T00:00:00.000Z" });

export const TaskViewSchema = z
  .strictObject({
    id: z.string(),
    task_id: z.string().meta({ description: "Same as id" }),
    namespace: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    command: z.string().nullable(),
    handler: z.string().meta({ description: "The plugin module that runs it" }),
    params: z.record(z.string(), z.unknown()),
    status: z.enum(TASK_STATUSES),
    priority: z.number().int(),
    attempt: z.number().int().meta({ description: "Attempt within the current series; 0 before the first" }),
    max_attempts: z.number().int(),
    infra_retries: z.number().int().meta({
      description:
        "Runs of this series lost to infrastructure (shutdown, a crashed or cut-off worker): retried without counting against max_attempts, up to worker.max_infra_retries",
    }),
    timeout_seconds: z.number().int(),
    progress: z.object({ percent: z.number(), message: z.string().optional() }).nullable(),
    result: z.unknown().meta({ description: "What the handler returned, or null" }),
    error: z.string().nullable(),
    schedule_id: z.string().nullable(),
    labels: z.record(z.string(), z.string()),
    created_at: IsoTime,
    updated_at: IsoTime,
    run_at: IsoTime,
    started_at: IsoTime.nullable(),
    finished_at: IsoTime.nullable(),
    waiting_reason: z
      .string()
      .nullable()
      .meta({
        description:
          "Why a task that is not running is not running (null when running or finished): paused; task type paused; " +
          "scheduled for T; retrying at T; concurrency limit of NAME reached (n of m running); all worker slots " +
          "busy (n running, m slots across k workers), where MAX_CONCURRENT_TASKS is each TME process's slots and m " +
          "their sum over the live processes (in the cloud: n running, m slots: MAX_CONCURRENT_TASKS, the worker's " +
          "reserved concurrency); queued behind N tasks of higher or equal priority; next in queue",
      }),
  })
  .meta({ id: "Task" });

export const TaskListSchema = z.array(TaskViewSchema);

export const TaskRunSchema = z
  .strictObject({
    series: z.number().int().meta({ description: "Restart count when this attempt ran" }),
    attempt: z.number().int(),
    status: z.enum(["running", "succeeded", "failed", "timed_out", "cancelled", "lost"]),
    worker_id: z.string(),
    exit_code: z.number().int().nullable(),
    error: z.string().nullable(),
    output_tail: z.string().nullable().meta({ description: "The last bytes of stdout+stderr" }),
    output_truncated: z.boolean(),
    started_at: IsoTime,
    finished_at: IsoTime.nullable(),
    work_ended_at: IsoTime.nullable().meta({
      description:
        "A lost run: when its worker stopped the work on its own (its lease could not be renewed); finished_at is when the task was taken back. Null otherwise",
    }),
  })
  .meta({ id: "TaskRun" });

export const TaskEventSchema = z
  .strictObject({
    id: z.string(),
    type: z.string().meta({ example: "task.cancelled" }),
    occurred_at: IsoTime,
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ id: "TaskEvent" });

export const BulkResultSchema = z
  .strictObject({
    changed: z.number().int(),
    skipped: z.number().int().meta({ description: "Selected tasks whose status does not allow the action" }),
    more: z.boolean().meta({ description: "True when the per-call cap (10000) stopped it: call again" }),
  })
  .meta({ id: "BulkTaskActionResult" });

export const TaskTypeSchema = z
  .strictObject({
    name: z.string(),
    counts: z
      .record(z.enum(TASK_STATUSES), z.number().int())
      .meta({ description: "Tasks of this name by status" }),
    concurrency: z.number().int().nullable().meta({ description: "Per-type limit from task_plugins.yaml" }),
    paused: z.boolean(),
    paused_at: IsoTime.nullable(),
  })
  .meta({ id: "TaskType" });
