import type { AppContext } from "../../context.js";
import { TASK_STATUSES, type TaskStatus } from "../../core/tasks/task.js";
import type { TaskTypeSummary } from "../../core/tasks/task-control-store.js";
import { decodeNameCursor, nextCursorHeader } from "../cursor.js";
import { response } from "../openapi.js";
import { type AnyRoute, defineRoute } from "../route.js";
import { actionRoute } from "./action-route.js";
import { PageQuery, TaskTypeParams, TaskTypeSchema } from "./task-schemas.js";
import { DEFAULT_PAGE_SIZE } from "./tasks.js";

const TAGS = ["task types"];

function present(app: AppContext, type: TaskTypeSummary) {
  const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
  return {
    name: type.name,
    counts: { ...counts, ...type.counts },
    concurrency: app.plugins.concurrencyOf(type.name) ?? null,
    paused: type.paused,
    paused_at: type.paused_at ? type.paused_at.toISOString() : null,
  };
}

const listTaskTypesRoute = defineRoute({
  method: "GET",
  path: "/task-types",
  scope: "tasks:read",
  query: PageQuery,
  docs: {
    summary: "Task types (task names) with counts by status, concurrency limit and pause state",
    tags: TAGS,
    description: "By name; includes paused names that have no tasks yet. Paged like every list.",
    responses: { 200: response("Task types", TaskTypeSchema.array()) },
  },
  async handle(req, app) {
    const limit = req.query.limit ?? DEFAULT_PAGE_SIZE;
    const after = decodeNameCursor(req.query.cursor);
    const rows = await app.taskControl.taskTypes(req.namespace, limit + 1, after);
    const page = rows.slice(0, limit);
    const next = rows.length > limit ? page[page.length - 1]!.name : undefined;
    return { status: 200, body: page.map((t) => present(app, t)), headers: nextCursorHeader(next) };
  },
});

function typeActionRoute(action: "pause" | "resume") {
  return actionRoute(`/task-types/{name}/${action}`, `task_type.${action}`, {
    scope: "tasks:write",
    params: TaskTypeParams,
    docs: {
      summary:
        action === "pause"
          ? "Hold every queued task of this name, including ones created while paused (idempotent)"
          : "Release a paused task type: its queued tasks run again (idempotent)",
      tags: TAGS,
      description:
        'Running tasks are not affected; paused queued tasks stay `queued` with waiting_reason "task type paused".',
      responses: { 200: response("The task type", TaskTypeSchema) },
    },
    async act(req, app) {
      const { name } = req.params;
      if (action === "pause")
        await app.taskControl.pauseType(req.namespace, name, req.principal?.keyId ?? "unknown");
      else await app.taskControl.resumeType(req.namespace, name);
      return present(app, await app.taskControl.taskType(req.namespace, name));
    },
  });
}

export const taskTypeRoutes: AnyRoute[] = [
  listTaskTypesRoute,
  typeActionRoute("pause"),
  typeActionRoute("resume"),
];
