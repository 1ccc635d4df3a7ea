import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as z from "zod";
import { checkHealth, DATABASE_HEALTH } from "../../core/health/health.js";
import { buildOpenApiDocument, response } from "../openapi.js";
import { type AnyRoute, defineRoute } from "../route.js";

const VERSION = "0.1.0";
const startedAt = Date.now();

const HealthSchema = z.object({
  status: z.enum(["ok", "degraded"]),
  database: z.enum(DATABASE_HEALTH).meta({
    description:
      "recovering: the embedded PostgreSQL died and is being restarted (crash recovery); " +
      "storage_full: it answers but a write failed in the last 30 s for want of disk (full or read-only)",
  }),
  version: z.string(),
  uptime_seconds: z.number(),
  command_isolation: z
    .object({
      kind: z.enum(["sandbox", "unprivileged_user", "none"]),
      detail: z.string(),
    })
    .optional()
    .meta({
      description:
        "How this process keeps shell commands from TME (shell.sandbox): sandbox (bubblewrap), " +
        "unprivileged_user (uid 65534, no sandbox) or none (TME's own user), and why",
    }),
});

export const healthRoute = defineRoute({
  method: "GET",
  path: "/health",
  scope: "public",
  docs: {
    summary: "Liveness and database reachability",
    tags: ["operations"],
    responses: {
      200: response("Healthy", HealthSchema),
      503: response("Database unreachable or unable to write", HealthSchema),
    },
  },
  async handle(_req, app) {
    const { healthy, database } = await checkHealth(app);
    return {
      status: healthy ? 200 : 503,
      headers: {
        "Cache-Control": "no-store",
        ...(healthy
          ? {}
          : ({ "Retry-After": database === "storage_full" ? "30" : "2" } as Record<string, string>)),
      },
      body: {
        status: healthy ? "ok" : "degraded",
        database,
        version: VERSION,
        uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
        ...(app.commandIsolation ? { command_isolation: app.commandIsolation } : {}),
      },
    };
  },
});

/**
 * /docs: Swagger UI from the package, started by a script file rather than an inline script so
 * the CSP can refuse every inline script. The key typed into "Authorize" lives in the page's
 * memory only: persistAuthorization off, and whatever an older page stored is removed.
 */
const DOCS_HTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>TME API</title>
<meta name="referrer" content="no-referrer">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head><body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body></html>`;

const DOCS_INIT_JS = `try { window.localStorage.removeItem("authorized"); } catch (e) {}
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", persistAuthorization: false });
`;

/** Scripts and styles from TME itself only; the page may call only TME; nobody may frame it. */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** Routes that describe the API itself; they need the full route list to document it. */
export function documentationRoutes(allRoutes: () => AnyRoute[]): AnyRoute[] {
  let document: object | undefined;
  // Resolved on first use: a Lambda bundle that never serves /docs needs no copy of the package.
  let swaggerDir: string | undefined;
  const assetPath = (file: string) => {
    swaggerDir ??= path.dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
    return path.join(swaggerDir, file);
  };
  const assets: Record<string, string> = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "application/javascript; charset=utf-8",
    "init.js": "application/javascript; charset=utf-8",
  };
  return [
    defineRoute({
      method: "GET",
      path: "/openapi.json",
      scope: "public",
      docs: {
        summary: "This API's OpenAPI 3.1 description",
        tags: ["operations"],
        responses: { 200: response("OpenAPI document") },
      },
      async handle() {
        document ??= buildOpenApiDocument(allRoutes(), VERSION);
        return { status: 200, body: document };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/docs",
      scope: "public",
      docs: {
        summary: "Rendered API reference (Swagger UI, served locally)",
        tags: ["operations"],
        responses: { 200: response("HTML") },
      },
      async handle() {
        return {
          status: 200,
          text: DOCS_HTML,
          contentType: "text/html; charset=utf-8",
          headers: { "Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-store" },
        };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/docs/assets/{file}",
      scope: "public",
      params: z.object({ file: z.enum(Object.keys(assets) as [string, ...string[]]) }),
      docs: {
        summary: "Swagger UI assets",
        tags: ["operations"],
        responses: { 200: response("asset") },
      },
      async handle(req) {
        const file = req.params.file;
        return {
          status: 200,
          text: file === "init.js" ? DOCS_INIT_JS : readFileSync(assetPath(file), "utf8"),
          contentType: assets[file],
          headers: { "Cache-Control": "public, max-age=86400" },
        };
      },
    }),
  ];
}
