import type { APIGatewayProxyEventV2, Context } from "aws-lambda";
import { cloudContext } from "../adapters/aws/cloud-context.js";
import type { AppContext } from "../context.js";
import { type ApiHandler, createApiHandler } from "../http/pipeline.js";
import { routes } from "../http/routes/index.js";

/** The API Lambda for a given context; the local runtime calls this with its own. */
export function createHandler(app: AppContext): ApiHandler {
  return createApiHandler(app, routes);
}

let cold: Promise<ApiHandler> | undefined;

/** Lambda entry: API Gateway HTTP API (payload v2) events. */
export const handler = async (event: APIGatewayProxyEventV2, context: Context) => {
  cold ??= cloudContext().then(createHandler);
  const api = await cold;
  return api(event, context);
};
