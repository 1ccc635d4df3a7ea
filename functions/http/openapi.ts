import { OpenAPIRegistry, OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";
import * as z from "zod";
import type { AnyRoute } from "./route.js";

export const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })),
  }),
});

/** A documented response of a route: what it means, and its body's schema (none: no JSON body). */
export function response(
  description: string,
  schema?: z.ZodType,
): { description: string; schema?: z.ZodType } {
  return schema ? { description, schema } : { description };
}

/** A documented error response: every error answers the one error body, ErrorBodySchema. */
export function errorResponse(description: string): { description: string; schema: z.ZodType } {
  return { description, schema: ErrorBodySchema };
}

const COMMON_ERRORS: Record<number, string> = {
  400: "Invalid input: unknown field, wrong type, bad value (details name each field)",
  401: "Missing or invalid API key",
  403: "The key lacks the scope this route needs",
};

/**
 * /openapi.json, generated from the very zod schemas that validate requests, so the
 * description cannot drift from what the API accepts.
 */
export function buildOpenApiDocument(routes: AnyRoute[], version: string): object {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "An API key: `npx tme keys create --name NAME --scopes admin`",
  });
  for (const route of routes) {
    const responses: Record<string, { description: string; content?: object }> = {};
    for (const [status, response] of Object.entries(route.docs.responses)) {
      responses[status] = {
        description: response.description,
        ...(response.schema ? { content: { "application/json": { schema: response.schema } } } : {}),
      };
    }
    const errorStatuses = route.scope === "public" ? [] : [400, 401, 403];
    for (const status of errorStatuses) {
      responses[String(status)] ??= {
        description: COMMON_ERRORS[status]!,
        content: { "application/json": { schema: ErrorBodySchema } },
      };
    }
    registry.registerPath({
      method: route.method.toLowerCase() as "get",
      path: route.path,
      summary: route.docs.summary,
      description: route.docs.description,
      tags: route.docs.tags,
      security: route.scope === "public" ? [] : [{ bearer: [] }],
      request: {
        ...(route.body
          ? { body: { content: { "application/json": { schema: route.body } }, required: true } }
          : {}),
        ...(route.query instanceof z.ZodObject ? { query: route.query } : {}),
        ...(route.params instanceof z.ZodObject ? { params: route.params } : {}),
      },
      responses,
    });
  }
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "TME, the Task Management Engine",
      version,
      description:
        "Create, schedule, run, watch and control tasks. Errors share one shape: " +
        '`{"error": {"code", "message", "details": [{"path", "message"}]}}`. Lists take `limit` and `cursor` ' +
        "and return the next cursor in `X-Next-Cursor`. Creating POSTs honour `Idempotency-Key`.",
    },
  });
}
