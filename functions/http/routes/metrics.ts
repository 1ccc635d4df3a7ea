import { TmeError } from "../../core/errors.js";
import { response } from "../openapi.js";
import { defineRoute } from "../route.js";

/**
 * GET /metrics: Prometheus text for a key with metrics:read (or admin). The local runtime serves
 * it (also keyless on metrics.port when set); the cloud answers 404 and is watched in CloudWatch.
 */
export const metricsRoute = defineRoute({
  method: "GET",
  path: "/metrics",
  scope: "metrics:read",
  docs: {
    summary: "Prometheus metrics of this process (local runtime)",
    tags: ["operations"],
    description:
      "Prometheus text exposition format. Needs a key with `metrics:read` or `admin`. Off on the API port " +
      "when `metrics.api` is false; `metrics.port` serves the same text on 127.0.0.1 without a key.",
    responses: {
      200: response("Prometheus text format 0.0.4"),
      404: response("Metrics are not served on this port or by this runtime"),
    },
  },
  async handle(_req, app) {
    if (!app.metrics || !app.config.app.metrics.api) {
      throw new TmeError(
        404,
        "metrics_not_served",
        app.metrics
          ? "metrics are not served on the API port (metrics.api is false); see metrics.port"
          : "this runtime does not serve Prometheus metrics (the cloud runtime reports to CloudWatch)",
      );
    }
    const { contentType, text } = await app.metrics.scrape();
    return { status: 200, text, contentType, headers: { "Cache-Control": "no-store" } };
  },
});
