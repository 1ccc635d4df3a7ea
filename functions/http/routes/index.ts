import type { AnyRoute } from "../route.js";
import { alertRoutes } from "./alerts.js";
import { auditRoutes } from "./audit.js";
import { dashboardRoutes } from "./dashboard.js";
import { dashboardFileRoutes } from "./dashboard-files.js";
import { deliveryRoutes } from "./deliveries.js";
import { keyRoutes } from "./keys.js";
import { metricsRoute } from "./metrics.js";
import { scheduleRoutes } from "./schedules.js";
import { subscriptionRoutes } from "./subscriptions.js";
import { documentationRoutes, healthRoute } from "./system.js";
import { taskTypeRoutes } from "./task-types.js";
import { taskRoutes } from "./tasks.js";

/**
 * Every route of the API, in one list: the router, the OpenAPI document and the tests
 * all read this. Each area of the API adds its own module here.
 */
export const routes: AnyRoute[] = [
  healthRoute,
  metricsRoute,
  ...taskRoutes,
  ...taskTypeRoutes,
  ...scheduleRoutes,
  ...subscriptionRoutes,
  ...deliveryRoutes,
  ...alertRoutes,
  ...keyRoutes,
  ...auditRoutes,
  ...dashboardRoutes,
  ...dashboardFileRoutes,
];
routes.push(...documentationRoutes(() => routes));
