import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { TmeError } from "../../core/errors.js";
import { defineRoute } from "../route.js";

// The dashboard's static files, apart from its data routes (dashboard.ts), so a runtime can serve
// them from somewhere else than the API function (the cloud keeps them out of the api bundle).

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
];
