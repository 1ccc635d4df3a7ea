import type { AnyRoute } from "../route.js";
import { scheduleRoutes } from "./schedules.js";
import { documentationRoutes, healthRoute } from "./system.js";

/**
 * Every route of the API, in one list: the router, the OpenAPI document and the tests
 * all read this. Each area of the API adds its own module here.
 */
export const routes: AnyRoute[] = [healthRoute, ...scheduleRoutes];
routes.push(...documentationRoutes(() => routes));
