import { existsSync, readdirSync, readFileSync } from "node:fs";
import { TmeError } from "../core/errors.js";
import type { ApiResponse } from "./route.js";

/**
 * The dashboard's built files as HTTP responses, at /dashboard and /dashboard/assets/{file}
 * in both runtimes: the local runtime's routes (routes/dashboard.ts) and, in the cloud, the
 * small dashboard Lambda (handlers/dashboard.ts) that API Gateway sends those two paths to.
 * Imports nothing beyond node:fs and TME's error type, so that Lambda stays a few KB and
 * the api bundle carries none of it.
 */

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

/** What an asset name may be: the content-hashed names Vite writes, nothing with a path in it. */
export const ASSET_NAME = /^[\w.-]{1,200}$/;

export interface DashboardFiles {
  /** GET /dashboard: index.html with the dashboard's CSP. */
  page(): ApiResponse;
  /** GET /dashboard/assets/{file}: a built script or style, cacheable for good. */
  asset(file: string): ApiResponse;
}

/** Serves the build in `distDir` (index.html and assets/); the asset list is read on first use. */
export function dashboardFiles(distDir: string): DashboardFiles {
  const dir = distDir.endsWith("/") ? distDir : `${distDir}/`;
  let assetNames: Set<string> | undefined;
  const builtAssets = () => {
    assetNames ??= new Set(existsSync(`${dir}assets`) ? readdirSync(`${dir}assets`) : []);
    return assetNames;
  };
  return {
    page() {
      const file = `${dir}index.html`;
      if (!existsSync(file)) {
        throw new TmeError(
          404,
          "dashboard_not_built",
          "this copy of TME has no built dashboard (functions/dashboard/dist); run npm run build:dashboard",
        );
      }
      return {
        status: 200,
        text: readFileSync(file, "utf8"),
        contentType: "text/html; charset=utf-8",
        headers: { "Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-store" },
      };
    },
    asset(file) {
      const type = CONTENT_TYPES[file.slice(file.lastIndexOf("."))];
      if (!ASSET_NAME.test(file) || !builtAssets().has(file) || !type) {
        throw new TmeError(404, "not_found", `no dashboard asset ${file}`);
      }
      return {
        status: 200,
        text: readFileSync(`${dir}assets/${file}`),
        contentType: type,
        // The name changes with the content, so a copy may be kept for good.
        headers: { "Cache-Control": "public, max-age=31536000, immutable" },
      };
    },
  };
}
