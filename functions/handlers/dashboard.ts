import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { exposedError, RouteNotFound } from "../core/errors.js";
import { errorResult, toResult, withSecurityHeaders } from "../http/api-gateway.js";
import { type DashboardFiles, dashboardFiles } from "../http/dashboard-static.js";

/** Where the stack copies functions/dashboard/dist inside this function's bundle. */
export const BUNDLED_DASHBOARD_DIR = "dashboard";

const ASSET_PREFIX = "/dashboard/assets/";

/**
 * The dashboard's static files in the cloud, for API Gateway's `GET /dashboard` and
 * `GET /dashboard/{proxy+}` routes (everything else goes to the api function). A function of
 * its own, outside the VPC and without the database or the AWS SDK, so the page costs the api
 * bundle nothing; the page then calls the API on the same origin, as it does locally.
 */
export function createDashboardHandler(files: DashboardFiles) {
  return async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
    const requestId = event.requestContext?.requestId ?? randomUUID();
    const method = event.requestContext?.http?.method ?? "GET";
    const rawPath = event.rawPath ?? "/";
    try {
      if (method !== "GET") throw new RouteNotFound(method, rawPath);
      const response =
        rawPath === "/dashboard" || rawPath === "/dashboard/"
          ? files.page()
          : rawPath.startsWith(ASSET_PREFIX)
            ? files.asset(rawPath.slice(ASSET_PREFIX.length))
            : undefined;
      if (!response) throw new RouteNotFound(method, rawPath);
      return withSecurityHeaders(toResult(response, requestId), false);
    } catch (error) {
      const exposed = exposedError(error);
      if (exposed) return errorResult(exposed, requestId);
      throw error;
    }
  };
}

/** Lambda entry: the files sit beside the bundle, in dashboard/ (infra/constructs/http-api.ts). */
export const handler = createDashboardHandler(
  dashboardFiles(fileURLToPath(new URL(`./${BUNDLED_DASHBOARD_DIR}/`, import.meta.url))),
);
