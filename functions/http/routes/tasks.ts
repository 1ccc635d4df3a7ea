import type { z } from "zod";
import type { AppContext } from "../../context.js";
import { NotFound } from "../../core/errors.js";
import { withFields } from "../../core/objects.js";
import {
  bulkAction,
  type ControlDeps,
  cancelTask,
  pauseTask,
  previewBulkAction,
  restartTask,
  resumeTask,
  updateTask,
} from "../../core/tasks/control-task.js";
import { createTask } from "../../core/tasks/create-task.js";
import { type Task, toTaskView } from "../../core/tasks/task.js";
import { hasQueuePlace, type WaitingFacts, waitingReason } from "../../core/tasks/waiting-reason.js";
import { decodeKeysetCursor, decodeSeqCursor, nextCursorHeader } from "../cursor.js";
import { errorResponse, response } from "../openapi.js";
import { type AnyRoute, defineRoute } from "../route.js";
import { actionRoute } from "./action-route.js";
import {
  BulkActionBody,
  BulkPreviewQuery,
  BulkResultSchema,
  CreateTaskBody,
  ListTasksQuery,
  PageQuery,
  TaskEventSchema,
  TaskIdParams,
  TaskListSchema,
  TaskRunSchema,
  TaskViewSchema,
  toTaskFilter,
  UpdateTaskBody,
} from "./task-schemas.js";

export const DEFAULT_PAGE_SIZE = 50;

const TAGS = ["tasks"];
const NOT_FOUND = errorResponse("No such task in this namespace");
const ILLEGAL = errorResponse("Illegal for the task's current status (details name it)");

/**
 * Tasks as the API shows them, with their waiting_reason. `known` are facts already read with the
 * tasks (a create's, StoredTask.waiting): they serve unless a task needs its place in the line.
 */
export async function presentTasks(app: AppContext, tasks: Task[], known?: WaitingFacts) {
  const now = app.now();
  const limits = {
    maxConcurrent: app.config.app.MAX_CONCURRENT_TASKS,
    concurrencyOf: (name: string) => app.plugins.concurrencyOf(name),
  };
  const facts =
    known && !tasks.some((task) => hasQueuePlace(task, known, limits, now))
      ? known
      : await app.taskControl.waitingFacts(tasks, now);
  return tasks.map((task) =>
    withFields(toTaskView(task), { waiting_reason: waitingReason(task, facts, limits, now) }),
  );
}

async function presentTask(app: AppContext, task: Task, known?: WaitingFacts) {
  return (await presentTasks(app, [task], known))[0]!;
}

function controlDeps(app: AppContext): ControlDeps {
  return { control: app.taskControl, config: app.config.app, now: app.now };
}

async function existingTask(app: AppContext, namespace: string, id: string): Promise<Task> {
  const task = await app.tasks.get(namespace, id);
  if (!task) throw new NotFound("task", id);
  return task;
}

const createTaskRoute = defineRoute({
  method: "POST",
  path: "/task/create",
  scope: "tasks:write",
  body: CreateTaskBody,
  idempotent: true,
  auditAction: "task.create",
  docs: {
    summary: "Create a task",
    tags: TAGS,
    description:
      "Only `name` is required; `command` or a plugin mapping for `name` must exist, else 422. " +
      "With `Idempotency-Key`, a repeat of the same body within 24 h answers 200 with the original task and " +
      "`Idempotent-Replayed: true`; the same key with another body is 409.",
    responses: {
      201: response("Created (queued)", TaskViewSchema),
      200: response("Idempotent replay of an earlier create", TaskViewSchema),
      409: errorResponse("Idempotency-Key reused with another body"),
      413: errorResponse("Body over 256 KiB"),
      415: errorResponse("Content-Type is not JSON"),
      422: errorResponse(
        "No plugin for the name and no command, params that do not fit the plugin, or a command it cannot run",
      ),
    },
  },
  async handle(req, app) {
    const { run_at, ...body } = req.body;
    const { auditEntry } = req;
    const { task, waiting } = await createTask(
      {
        tasks: app.tasks,
        plugins: app.plugins,
        config: app.config.app,
        now: app.now,
        caller: req.principal,
        audit: auditEntry && ((taskId) => auditEntry(taskId, 201)),
      },
      req.namespace,
      { ...body, run_at: run_at === undefined ? undefined : new Date(run_at) },
    );
    return {
      status: 201,
      body: await presentTask(app, task, waiting),
      headers: { Location: `/task/${task.id}` },
      audited: auditEntry !== undefined,
    };
  },
});

const getTaskRoute = defineRoute({
  method: "GET",
  path: "/task/{task_id}",
  scope: "tasks:read",
  params: TaskIdParams,
  docs: {
    summary: "Get a task",
    tags: TAGS,
    responses: { 200: response("The task", TaskViewSchema), 404: NOT_FOUND },
  },
  async handle(req, app) {
    return {
      status: 200,
      body: await presentTask(app, await existingTask(app, req.namespace, req.params.task_id)),
    };
  },
});

const updateTaskRoute = defineRoute({
  method: "PATCH",
  path: "/task/{task_id}",
  scope: "tasks:write",
  params: TaskIdParams,
  body: UpdateTaskBody,
  auditAction: "task.update",
  docs: {
    summary: "Update a task",
    tags: TAGS,
    description:
      "Partial update of `description`, `priority`, `labels`, `timeout_seconds`, `max_attempts`, and `run_at` " +
      "(while queued, paused or retrying); `status` is an action: `paused`, `queued` (resume) or `cancelled`. " +
      "Edits without a status change write no lifecycle event (the audit log records them).",
    responses: {
      200: response("The updated task", TaskViewSchema),
      404: NOT_FOUND,
      409: ILLEGAL,
      422: errorResponse(
        "max_attempts that leaves the task no attempt (below those made; for a waiting task, not above)",
      ),
    },
  },
  async handle(req, app) {
    const { run_at, ...update } = req.body;
    const task = await updateTask(controlDeps(app), req.namespace, req.params.task_id, {
      ...update,
      ...(run_at === undefined ? {} : { run_at: new Date(run_at) }),
    });
    return { status: 200, body: await presentTask(app, task) };
  },
});

const ACTION_DOCS = {
  cancel: "Cancel a queued, paused, retrying or running task (a running one is stopped within 2 s)",
  pause: "Pause a queued or retrying task",
  resume: "Resume a paused task",
  restart: "Restart a failed, timed_out, cancelled or succeeded task as a new attempt series",
} as const;

const ACTIONS = { cancel: cancelTask, pause: pauseTask, resume: resumeTask, restart: restartTask } as const;

function taskActionRoute(action: keyof typeof ACTIONS) {
  return actionRoute(`/task/{task_id}/${action}`, `task.${action}`, {
    scope: "tasks:write",
    params: TaskIdParams,
    docs: {
      summary: ACTION_DOCS[action],
      tags: TAGS,
      responses: {
        200: response("The task after the action", TaskViewSchema),
        404: NOT_FOUND,
        409: ILLEGAL,
      },
    },
    act: async (req, app) =>
      presentTask(app, await ACTIONS[action](controlDeps(app), req.namespace, req.params.task_id)),
  });
}

const listTasksRoute = defineRoute({
  method: "GET",
  path: "/tasks",
  scope: "tasks:read",
  query: ListTasksQuery,
  docs: {
    summary: "List tasks, newest first",
    tags: TAGS,
    description:
      "Filters combine with AND. The next page's cursor comes in `X-Next-Cursor` (absent on the last page); " +
      "tasks created while paging appear on no later page, so pages never repeat or skip a task.",
    responses: { 200: response("A page of tasks", TaskListSchema) },
  },
  async handle(req, app) {
    const { limit, cursor, ...filters } = req.query;
    const after = decodeKeysetCursor(cursor);
    const page = await app.taskControl.list(
      req.namespace,
      toTaskFilter(filters),
      limit ?? DEFAULT_PAGE_SIZE,
      after,
    );
    return { status: 200, body: await presentTasks(app, page.rows), headers: nextCursorHeader(page.next) };
  },
});

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * GET /task/{task_id}/runs and /events: a task's history, oldest first, paged by the rows' own
 * sequence number (a 404 when the task is not the caller's).
 */
function taskHistoryRoute<R>(history: {
  path: "runs" | "events";
  summary: string;
  description: string;
  schema: z.ZodType;
  read: (app: AppContext) => (taskId: string, limit: number, after: number | undefined) => Promise<R[]>;
  seqOf: (row: R) => number;
  view: (row: R) => unknown;
}) {
  return defineRoute({
    method: "GET",
    path: `/task/{task_id}/${history.path}`,
    scope: "tasks:read",
    params: TaskIdParams,
    query: PageQuery,
    docs: {
      summary: history.summary,
      tags: TAGS,
      responses: {
        200: { description: history.description, schema: history.schema.array() },
        404: NOT_FOUND,
      },
    },
    async handle(req, app) {
      const task = await existingTask(app, req.namespace, req.params.task_id);
      const limit = req.query.limit ?? DEFAULT_PAGE_SIZE;
      const rows = await history.read(app)(task.id, limit + 1, decodeSeqCursor(req.query.cursor));
      const page = rows.slice(0, limit);
      const next = rows.length > limit ? history.seqOf(page[page.length - 1]!) : undefined;
      return { status: 200, body: page.map(history.view), headers: nextCursorHeader(next) };
    },
  });
}

const taskRunsRoute = taskHistoryRoute({
  path: "runs",
  summary: "The attempts of a task, oldest first",
  description: "Attempts",
  schema: TaskRunSchema,
  read: (app) => (id, limit, after) => app.taskControl.runs(id, limit, after),
  seqOf: (run) => run.id,
  view: ({ id: _, started_at, finished_at, work_ended_at, ...run }) => ({
    ...run,
    started_at: started_at.toISOString(),
    finished_at: iso(finished_at),
    work_ended_at: iso(work_ended_at),
  }),
});

const taskEventsRoute = taskHistoryRoute({
  path: "events",
  summary: "The lifecycle events of a task, oldest first",
  description: "Events",
  schema: TaskEventSchema,
  read: (app) => (id, limit, after) => app.taskControl.events(id, limit, after),
  seqOf: (event) => event.seq,
  view: (event) => ({
    id: event.event_id,
    type: event.type,
    occurred_at: event.occurred_at.toISOString(),
    data: event.data,
  }),
});

const bulkActionRoute = defineRoute({
  method: "POST",
  path: "/tasks/actions",
  scope: "tasks:write",
  body: BulkActionBody,
  auditAction: "tasks.bulk_action",
  docs: {
    summary: "Cancel, pause, resume or restart every task a filter selects",
    tags: TAGS,
    description:
      "Tasks whose status does not allow the action are skipped and counted. Works in batches of 200, " +
      "each in its own transaction; at most 10000 tasks change per call (`more: true`: call again).",
    responses: { 200: response("Counts", BulkResultSchema) },
  },
  async handle(req, app) {
    const result = await bulkAction(
      controlDeps(app),
      req.namespace,
      req.body.action,
      toTaskFilter(req.body.filter),
    );
    return { status: 200, body: result };
  },
});

const bulkPreviewRoute = defineRoute({
  method: "GET",
  path: "/tasks/actions/preview",
  scope: "tasks:read",
  query: BulkPreviewQuery,
  docs: {
    summary: "How many tasks POST /tasks/actions would change and skip now, changing nothing",
    tags: TAGS,
    description:
      "The same filters as GET /tasks (at least one) and the action. Counts at the moment of asking: " +
      "tasks that change status before the action is sent make its real figures differ.",
    responses: { 200: response("Counts the action would have", BulkResultSchema) },
  },
  async handle(req, app) {
    const { action, ...filter } = req.query;
    return {
      status: 200,
      body: await previewBulkAction(controlDeps(app), req.namespace, action, toTaskFilter(filter)),
    };
  },
});

export const taskRoutes: AnyRoute[] = [
  createTaskRoute,
  listTasksRoute,
  bulkActionRoute,
  bulkPreviewRoute,
  getTaskRoute,
  updateTaskRoute,
  taskActionRoute("cancel"),
  taskActionRoute("pause"),
  taskActionRoute("resume"),
  taskActionRoute("restart"),
  taskRunsRoute,
  taskEventsRoute,
];
