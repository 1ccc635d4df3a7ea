import type { z } from "zod";
import type { AppContext } from "../../context.js";
import type { Scope } from "../../core/auth/api-keys.js";
import { type ApiRequest, defineRoute, type RouteDocs } from "../route.js";
import { EmptyBody } from "./task-schemas.js";

/**
 * An action on one stored thing (pause, resume, cancel...): a POST with an empty body, audited
 * as `auditAction`, answered 200 with what `act` returns (the thing after the action).
 */
export function actionRoute<P>(
  path: string,
  auditAction: string,
  route: {
    scope: Scope;
    params: z.ZodType<P>;
    docs: RouteDocs;
    act: (req: ApiRequest<z.infer<typeof EmptyBody>, undefined, P>, app: AppContext) => Promise<unknown>;
  },
) {
  return defineRoute({
    method: "POST",
    path,
    scope: route.scope,
    params: route.params,
    body: EmptyBody,
    auditAction,
    docs: route.docs,
    async handle(req, app) {
      return { status: 200, body: await route.act(req, app) };
    },
  });
}
