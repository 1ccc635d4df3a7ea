import { fileURLToPath } from "node:url";
import * as z from "zod";
import { ASSET_NAME, DASHBOARD_CSP, dashboardFiles } from "../dashboard-static.js";
import { response } from "../openapi.js";
import { defineRoute } from "../route.js";

// The dashboard's static files, apart from its data routes (dashboard.ts). The local runtime
// serves them here; in the cloud API Gateway sends these two paths to the dashboard Lambda
// (handlers/dashboard.ts, with the same dashboard-static.ts), so the api bundle has no copy.

/** Re-exported: the local event stream and the tests read it from here. */
export { DASHBOARD_CSP };

/**
 * The dashboard's built files (functions/dashboard/build.ts writes them before `tme start`).
 * Read on first use.
 */
const files = dashboardFiles(fileURLToPath(new URL("../../dashboard/dist/", import.meta.url)));

export const dashboardFileRoutes = [
  defineRoute({
    method: "GET",
    path: "/dashboard",
    scope: "public",
    docs: {
      summary: "The management dashboard (a static page that signs in with an API key)",
      tags: ["operations"],
      description:
        "The page itself holds no data: it asks for an API key, keeps it in sessionStorage, and calls this " +
        "same public API. Served in both runtimes (in the cloud by a small function of its own).",
      responses: { 200: response("HTML"), 404: response("No built dashboard in this copy") },
    },
    async handle() {
      return files.page();
    },
  }),
  defineRoute({
    method: "GET",
    path: "/dashboard/assets/{file}",
    scope: "public",
    params: z.object({ file: z.string().regex(ASSET_NAME) }),
    docs: {
      summary: "The dashboard's scripts and styles (content-hashed names)",
      tags: ["operations"],
      responses: { 200: response("asset"), 404: response("No such asset") },
    },
    async handle(req) {
      return files.asset(req.params.file);
    },
  }),
];
