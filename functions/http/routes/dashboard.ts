import * as z from "zod";
import { SCOPES } from "../../core/auth/api-keys.js";
import { TmeError } from "../../core/errors.js";
import { response } from "../openapi.js";
import { defineRoute } from "../route.js";

const WhoAmI = z.object({
  key_id: z.string(),
  name: z.string(),
  namespace: z.string(),
  scopes: z.array(z.enum(SCOPES)),
  admin: z.boolean(),
});

const TaskStatsSchema = z.object({
  namespace: z.string(),
  generated_at: z.string(),
  counts: z
    .record(z.string(), z.number())
    .meta({ description: "Tasks by status (statuses with none are left out)" }),
  finished_per_minute: z.array(
    z.object({ minute: z.string(), succeeded: z.number(), failed: z.number(), cancelled: z.number() }),
  ),
  failure_rate_last_hour: z
    .number()
    .nullable()
    .meta({ description: "failed + timed_out over them plus succeeded, last hour; null when none ended" }),
  queue_depth: z.number().meta({ description: "queued tasks whose run_at has come" }),
  oldest_queued_age_seconds: z.number().nullable(),
});

export const dashboardRoutes = [
  defineRoute({
    method: "GET",
    path: "/whoami",
    scope: SCOPES,
    docs: {
      summary: "The calling key: its name, namespace and scopes",
      tags: ["operations"],
      description: "Any valid key may ask. The dashboard reads it to show only what the key may do.",
      responses: { 200: response("The key", WhoAmI) },
    },
    async handle(req) {
      const principal = req.principal!;
      return {
        status: 200,
        body: {
          key_id: principal.keyId,
          name: principal.name,
          namespace: principal.namespace,
          scopes: principal.scopes,
          admin: principal.scopes.includes("admin"),
        },
      };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/stats",
    scope: "tasks:read",
    docs: {
      summary: "Aggregated task figures of the namespace: counts, throughput, failure rate, queue",
      tags: ["tasks"],
      description:
        "Counts by status; tasks finished per minute over the last hour (from their lifecycle events, so " +
        "a restarted task that ends again counts again); the failure rate of that hour; queue depth and " +
        "the age of the oldest queued task whose run_at has come.",
      responses: { 200: response("Figures", TaskStatsSchema) },
    },
    async handle(req, app) {
      return { status: 200, body: await app.taskStats.read(req.namespace, app.now()) };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/stream",
    scope: "tasks:read",
    docs: {
      summary: "Server-sent events of the namespace's task changes (local runtime)",
      tags: ["tasks"],
      description:
        "text/event-stream: one `event: task` per lifecycle event, `data` being `{id, type, occurred_at, " +
        "task_id, data}`; a comment line every 15 s keeps proxies from closing it. A client that does not " +
        "keep up is disconnected rather than buffered for: reconnect and re-read what you show. " +
        "Send the key in Authorization (read the stream with fetch; EventSource cannot send headers). " +
        "The cloud runtime (API Gateway) cannot stream and answers 404 stream_not_served: poll instead.",
      responses: {
        200: response("text/event-stream"),
        404: response("This runtime does not stream (poll GET /tasks and GET /stats)"),
      },
    },
    async handle() {
      // The local edge answers /stream itself (local/event-stream.ts) before the handler is called.
      throw new TmeError(
        404,
        "stream_not_served",
        "this runtime cannot stream server-sent events; poll GET /tasks and GET /stats instead",
      );
    },
  }),
];
