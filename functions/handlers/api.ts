import type { APIGatewayProxyEventV2, Context } from "aws-lambda";
import { lambdaHandler } from "../adapters/aws/lambda-telemetry.js";
import { relayAfterChange } from "../cloud/outbox-sinks.js";
import { coldStart } from "../cloud/runtime.js";
import type { AppContext } from "../context.js";
import { type ApiHandler, createApiHandler } from "../http/pipeline.js";
import { routes } from "../http/routes/index.js";

/** The API Lambda for a given context; the local runtime calls this with its own. */
export function createHandler(app: AppContext): ApiHandler {
  return createApiHandler(app, routes);
}

const setup = coldStart("api", (app) => ({ api: createHandler(app), relay: relayAfterChange(app) }));

/** Lambda entry: API Gateway HTTP API (payload v2) events. */
export const handler = lambdaHandler("api", async (event: APIGatewayProxyEventV2, context: Context) => {
  const { api, relay } = await setup();
  const response = await api(event, context);
  if (event.requestContext.http.method !== "GET") await relay();
  return response;
});
