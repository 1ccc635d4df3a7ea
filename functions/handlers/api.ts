import type { APIGatewayProxyEventV2, Context } from "aws-lambda";
import { cloudContext } from "../adapters/aws/cloud-context.js";
import { relayAfterChange } from "../adapters/aws/cloud-outbox-sinks.js";
import type { AppContext } from "../context.js";
import { type ApiHandler, createApiHandler } from "../http/pipeline.js";
import { routes } from "../http/routes/index.js";

/** The API Lambda for a given context; the local runtime calls this with its own. */
export function createHandler(app: AppContext): ApiHandler {
  return createApiHandler(app, routes);
}

let cold: Promise<{ api: ApiHandler; relay: () => Promise<void> }> | undefined;

/** Lambda entry: API Gateway HTTP API (payload v2) events. */
export const handler = async (event: APIGatewayProxyEventV2, context: Context) => {
  cold ??= cloudContext("api").then((app) => ({ api: createHandler(app), relay: relayAfterChange(app) }));
  const { api, relay } = await cold;
  const response = await api(event, context);
  if (event.requestContext.http.method !== "GET") await relay();
  return response;
};
