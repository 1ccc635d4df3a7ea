import * as z from "zod";
import { ALERT_RULES, alertView } from "../../core/alerts/alert.js";
import { listAlerts } from "../../core/alerts/evaluate-alerts.js";
import { decodeKeysetCursor, nextCursorHeader, PageQueryFields } from "../cursor.js";
import { response } from "../openapi.js";
import { defineRoute } from "../route.js";

const AlertView = z.object({
  id: z.string(),
  alert_id: z.string(),
  namespace: z.string(),
  rule: z.enum(ALERT_RULES),
  subject: z.string(),
  status: z.enum(["open", "resolved"]),
  message: z.string(),
  details: z.record(z.string(), z.unknown()),
  raised_at: z.string(),
  resolved_at: z.string().nullable(),
});

export const alertRoutes = [
  defineRoute({
    method: "GET",
    path: "/alerts",
    scope: "tasks:read",
    query: z
      .object({
        status: z.enum(["open", "resolved"]).optional(),
        rule: z.enum(ALERT_RULES).optional(),
        resolved_within_hours: z.coerce
          .number()
          .positive()
          .max(24 * 90)
          .default(24)
          .describe("How far back resolved alerts are listed (default 24)"),
        ...PageQueryFields,
      })
      .strict(),
    docs: {
      summary: "Open alerts and recently resolved ones, newest first",
      tags: ["events"],
      description:
        "Each alert is also an event: subscribe to alert.* to be told when one is raised or resolved.",
      responses: {
        200: response("Alerts (X-Next-Cursor for the next page)", z.array(AlertView)),
      },
    },
    async handle(req, app) {
      const page = await listAlerts(app, req.namespace, {
        status: req.query.status,
        rule: req.query.rule,
        resolvedWithinHours: req.query.resolved_within_hours,
        limit: req.query.limit,
        after: decodeKeysetCursor(req.query.cursor),
      });
      return { status: 200, body: page.rows.map(alertView), headers: nextCursorHeader(page.next) };
    },
  }),
];
