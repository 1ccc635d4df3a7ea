import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { readTaskStats } from "../../adapters/postgres/stats-repository.js";
import { SCOPES } from "../../core/auth/api-keys.js";
import { TmeError } from "../../core/errors.js";
import { defineRoute } from "../route.js";

/**
 * The dashboard's built files (npm run build:dashboard writes them; they are committed, so a
 * fresh clone serves the page without a build). Resolved on first use: a Lambda bundle that
 * never serves the page needs no copy.
 */
const DIST_DIR = fileURLToPath(new URL("../../dashboard/dist/", import.meta.url));

/**
 * Only TME's own files run, style and connect; nothing inline (no 'unsafe-inline' for scripts
 * or styles: the chart and the views set styles through the DOM, which CSP allows), nothing
 * from elsewhere, no framing, no forms posting anywhere.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

const CONTENT_TYPES: Record<string, string> = {
  ".js": "application/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".map": "application/json; charset=utf-8",
};

let assetNames: Set<string> | undefined;
function builtAssets(): Set<string> {
  const dir = `${DIST_DIR}assets`;
  assetNames ??= new Set(existsSync(dir) ? readdirSync(dir) : []);
  return assetNames;
}

function notBuilt(): TmeError {
  return new TmeError(
    404,
    "dashboard_not_built",
    "this copy of TME has no built dashboard (functions/dashboard/dist); run npm run build:dashboard",
  );
}

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
    path: "/dashboard",
    scope: "public",
    docs: {
      summary: "The management dashboard (a static page that signs in with an API key)",
      tags: ["operations"],
      description:
        "The page itself holds no data: it asks for an API key, keeps it in sessionStorage, and calls this " +
        "same public API. Served by the local runtime.",
      responses: { 200: { description: "HTML" }, 404: { description: "No built dashboard in this copy" } },
    },
    async handle() {
      const file = `${DIST_DIR}index.html`;
      if (!existsSync(file)) throw notBuilt();
      return {
        status: 200,
        text: readFileSync(file, "utf8"),
        contentType: "text/html; charset=utf-8",
        headers: { "Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-store" },
      };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/dashboard/assets/{file}",
    scope: "public",
    params: z.object({ file: z.string().regex(/^[\w.-]{1,200}$/) }),
    docs: {
      summary: "The dashboard's scripts and styles (content-hashed names)",
      tags: ["operations"],
      responses: { 200: { description: "asset" }, 404: { description: "No such asset" } },
    },
    async handle(req) {
      const file = req.params.file;
      const type = CONTENT_TYPES[file.slice(file.lastIndexOf("."))];
      if (!builtAssets().has(file) || !type)
        throw new TmeError(404, "not_found", `no dashboard asset ${file}`);
      return {
        status: 200,
        text: readFileSync(`${DIST_DIR}assets/${file}`),
        contentType: type,
        // The name changes with the content, so a copy may be kept for good.
        headers: { "Cache-Control": "public, max-age=31536000, immutable" },
      };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/whoami",
    scope: SCOPES,
    docs: {
      summary: "The calling key: its name, namespace and scopes",
      tags: ["operations"],
      description: "Any valid key may ask. The dashboard reads it to show only what the key may do.",
      responses: { 200: { description: "The key", schema: WhoAmI } },
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
      responses: { 200: { description: "Figures", schema: TaskStatsSchema } },
    },
    async handle(req, app) {
      return { status: 200, body: await readTaskStats(app.db, req.namespace, app.now()) };
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
        200: { description: "text/event-stream" },
        404: { description: "This runtime does not stream (poll GET /tasks and GET /stats)" },
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
