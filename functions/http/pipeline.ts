import { createHash, randomUUID } from "node:crypto";
import middy from "@middy/core";
import httpRouterHandler from "@middy/http-router";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import type { z } from "zod";
import { TransactionBoundDb } from "../adapters/postgres/database.js";
import { type AppContext, withDb } from "../context.js";
import { effectiveNamespace, hashApiKey, requireScope } from "../core/auth/api-keys.js";
import {
  Conflict,
  issuesToDetails,
  MethodNotAllowed,
  PayloadTooLarge,
  RouteNotFound,
  TmeError,
  Unauthenticated,
  Unavailable,
  UnsupportedMediaType,
  ValidationFailed,
} from "../core/errors.js";
import type { Logger } from "../logging/logger.js";
import { lowercaseHeaders, parseQuery, rawBody, toResult } from "./api-gateway.js";
import type { AnyRoute, ApiRequest, ApiResponse, Method } from "./route.js";
import { assertStorableJson } from "./safe-input.js";

export const MAX_BODY_BYTES = 256 * 1024;

type Event = APIGatewayProxyEventV2;
type Result = APIGatewayProxyStructuredResultV2;
/** Per-invocation state the middlewares share, kept on the Lambda context object. */
type TmeContext = Context & {
  tme?: { requestId: string; logger: Logger; startedAt: number; headers: Record<string, string> };
  /** The matched route's template (/task/{task_id}), for metrics and spans: never the raw path. */
  tmeRoute?: string;
};

function validate<T>(schema: z.ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const details = issuesToDetails(result.error.issues).map((d) =>
    where === "body" ? d : { ...d, path: d.path === "(body)" ? where : `${where}.${d.path}` },
  );
  throw new ValidationFailed(
    `invalid ${where}: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`,
    details,
  );
}

function parseJsonBody(bytes: Buffer, headers: Record<string, string>): unknown {
  if (bytes.length === 0) return {};
  const contentType = headers["content-type"];
  if (!contentType || !/^application\/(?:[\w.+-]+\+)?json\s*(;|$)/i.test(contentType)) {
    throw new UnsupportedMediaType(contentType);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new ValidationFailed(`body is not valid JSON: ${(error as Error).message}`, [
      { path: "(body)", message: "not valid JSON" },
    ]);
  }
  assertStorableJson(parsed, "body");
  return parsed;
}

async function authenticate(app: AppContext, headers: Record<string, string>) {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? "");
  if (!match) throw new Unauthenticated("missing API key: send Authorization: Bearer <key>");
  const principal = await app.apiKeys.findByHash(hashApiKey(match[1]!));
  if (!principal) throw new Unauthenticated("invalid or revoked API key");
  return principal;
}

function decodePathParameter(name: string, value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new ValidationFailed(`path parameter ${name} is not valid percent-encoding`, [
      { path: `path.${name}`, message: "malformed percent-encoding" },
    ]);
  }
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * Idempotency-Key: the first request with a key runs inside one transaction with the record
 * of its response, under a lock on the key, so concurrent duplicates wait and then replay,
 * and a crash leaves neither the task nor the record.
 */
async function runIdempotent(
  route: AnyRoute,
  req: ApiRequest,
  app: AppContext,
  key: string,
  audit: (db: AppContext["db"], response: ApiResponse) => Promise<void>,
): Promise<ApiResponse> {
  if (key.length > 255) {
    throw new ValidationFailed("Idempotency-Key is longer than 255 characters", [
      { path: "headers.idempotency-key", message: "at most 255 characters" },
    ]);
  }
  const routeKey = `${route.method} ${route.path}`;
  const requestHash = createHash("sha256").update(canonicalJson(req.body)).digest("hex");
  return app.db.transaction(async (tx) => {
    // Postgres text cannot hold NUL, so the parts are joined as a JSON array (unambiguous too).
    await tx.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [
      JSON.stringify([req.namespace, routeKey, key]),
    ]);
    const { rows } = await tx.query<{
      request_hash: string;
      response_status: number;
      response_body: unknown;
    }>(
      `SELECT request_hash, response_status, response_body FROM idempotency_keys
       WHERE namespace = $1 AND route = $2 AND key = $3 AND created_at > now() - interval '24 hours'`,
      [req.namespace, routeKey, key],
    );
    const previous = rows[0];
    if (previous) {
      if (previous.request_hash !== requestHash) {
        throw new Conflict(
          "idempotency_key_reused",
          "this Idempotency-Key was used with a different request body",
          [{ path: "headers.idempotency-key", message: "reuse a key only with the identical body" }],
        );
      }
      return { status: 200, body: previous.response_body, headers: { "Idempotent-Replayed": "true" } };
    }
    const bound = new TransactionBoundDb(tx);
    const response = await route.handle(req, withDb(app, bound));
    if (response.status >= 200 && response.status < 300) {
      await tx.query(
        `INSERT INTO idempotency_keys (namespace, route, key, request_hash, response_status, response_body)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (namespace, route, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
           response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body, created_at = now()`,
        [req.namespace, routeKey, key, requestHash, response.status, JSON.stringify(response.body ?? null)],
      );
      await audit(bound, response);
    }
    return response;
  });
}

function targetOf(params: unknown, response: ApiResponse): string | null {
  const fromParams = params && typeof params === "object" ? Object.values(params as object)[0] : undefined;
  if (typeof fromParams === "string") return fromParams;
  const body = response.body as { id?: unknown } | undefined;
  return typeof body?.id === "string" ? body.id : null;
}

async function runRoute(
  route: AnyRoute,
  event: Event,
  context: TmeContext,
  app: AppContext,
): Promise<Result> {
  const { requestId, logger, headers } = context.tme!;
  // Size first (cheap, and protects the rest), then who is asking, then what they sent.
  const body = rawBody(event);
  if (body.length > MAX_BODY_BYTES) throw new PayloadTooLarge(MAX_BODY_BYTES);
  const principal = route.scope === "public" ? undefined : await authenticate(app, headers);
  if (principal && route.scope !== "public") requireScope(principal, route.scope);
  const hasBody = route.method !== "GET" && route.method !== "DELETE";
  const rawJson = hasBody && route.body ? parseJsonBody(body, headers) : undefined;

  const rawQuery = parseQuery(event);
  assertStorableJson(rawQuery, "query");
  const { namespace: requestedNamespace, ...query } = rawQuery;
  const namespace = principal ? effectiveNamespace(principal, requestedNamespace) : "default";
  const decodedParams = Object.fromEntries(
    Object.entries(event.pathParameters ?? {}).map(([k, v]) => [k, decodePathParameter(k, v ?? "")]),
  );
  assertStorableJson(decodedParams, "path");

  const req: ApiRequest = {
    method: route.method,
    path: event.rawPath,
    body: validate(route.body, rawJson, "body"),
    query: validate(route.query, query, "query") ?? query,
    params: validate(route.params, decodedParams, "path") ?? decodedParams,
    headers,
    principal,
    namespace,
    requestId,
    sourceIp: event.requestContext?.http?.sourceIp ?? "unknown",
    logger,
  };

  const mutating = route.method !== "GET";
  const audit = async (db: AppContext["db"], response: ApiResponse) => {
    if (!mutating || !principal) return;
    await db.query(
      `INSERT INTO audit_log (actor, namespace, action, target, request_id, source_ip, details)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        principal.keyId,
        namespace,
        route.auditAction ?? `${route.method} ${route.path}`,
        targetOf(req.params, response),
        requestId,
        req.sourceIp,
        JSON.stringify({ status: response.status, key_name: principal.name }),
      ],
    );
  };

  const idempotencyKey = headers["idempotency-key"];
  let response: ApiResponse;
  if (route.idempotent && idempotencyKey !== undefined) {
    response = await runIdempotent(route, req, app, idempotencyKey, audit);
  } else {
    response = await route.handle(req, app);
    if (response.status < 400) await audit(app.db, response);
  }
  return toResult(response, requestId);
}

const CONNECTION_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "57P01", "57P03", "53300"]);

function errorResponse(error: unknown, logger: Logger, requestId: string): Result {
  let tmeError: TmeError;
  if (error instanceof TmeError) {
    tmeError = error;
  } else if (CONNECTION_ERRORS.has((error as { code?: string })?.code ?? "")) {
    logger.error({ err: error }, "database unavailable");
    tmeError = new Unavailable("the database is unavailable; try again shortly");
  } else {
    logger.error({ err: error }, "unhandled error");
    tmeError = new TmeError(500, "internal_error", `internal error (request id ${requestId})`);
  }
  if (tmeError.status < 500) logger.info({ code: tmeError.code, status: tmeError.status }, tmeError.message);
  return toResult(
    {
      status: tmeError.status,
      headers: tmeError.headers,
      body: { error: { code: tmeError.code, message: tmeError.message, details: tmeError.details } },
    },
    requestId,
  );
}

/** Path templates compiled once, to tell a wrong method (405) from an unknown path (404). */
function methodsForPath(routes: AnyRoute[]): (path: string) => Method[] {
  const compiled = routes.map((r) => ({
    method: r.method,
    pattern: new RegExp(`^${r.path.replace(/\{[^}]+\}/g, "[^/]+")}/?$`),
  }));
  return (path) => [...new Set(compiled.filter((c) => c.pattern.test(path)).map((c) => c.method))];
}

/** The API Lambda: middy, a router over TME's routes, and one error shape for everything. */
export function createApiHandler(app: AppContext, routes: AnyRoute[]) {
  const allowedMethods = methodsForPath(routes);
  const router = httpRouterHandler<Event, Result>({
    routes: routes.map((route) => ({
      method: route.method,
      path: route.path,
      handler: (event: Event, context: Context) => {
        (context as TmeContext).tmeRoute = route.path;
        return runRoute(route, event, context as TmeContext, app);
      },
    })),
    notFoundResponse: ({ method, path }) => {
      const allowed = allowedMethods(path);
      throw allowed.length > 0
        ? new MethodNotAllowed(method, path, allowed)
        : new RouteNotFound(method, path);
    },
  });

  const handler = middy<Event, Result, Error, Context>()
    .use({
      before: (request) => {
        const headers = lowercaseHeaders(request.event.headers);
        const incoming = headers["x-request-id"];
        const requestId =
          incoming && /^[\w.:-]{1,128}$/.test(incoming)
            ? incoming
            : (request.event.requestContext?.requestId ?? randomUUID());
        const logger = app.logger.child({ request_id: requestId });
        (request.context as TmeContext).tme = { requestId, logger, startedAt: Date.now(), headers };
      },
      after: (request) => {
        const { logger, startedAt } = (request.context as TmeContext).tme!;
        const http = request.event.requestContext?.http;
        logger.debug(
          {
            method: http?.method,
            path: request.event.rawPath,
            status: request.response?.statusCode,
            ms: Date.now() - startedAt,
          },
          "request",
        );
      },
      onError: (request) => {
        const tme = (request.context as TmeContext).tme ?? {
          requestId: randomUUID(),
          logger: app.logger,
          startedAt: Date.now(),
          headers: {},
        };
        request.response = errorResponse(request.error, tme.logger, tme.requestId);
      },
    })
    .handler(router as unknown as (event: Event, context: Context) => Promise<Result>);

  return (event: Event, context: Context): Promise<Result> =>
    app.observer.request(
      event.requestContext?.http?.method ?? "GET",
      lowercaseHeaders(event.headers),
      async () => {
        const value = await handler(event, context);
        const route = (context as TmeContext).tmeRoute ?? "unmatched";
        return { value, end: { route, status: value?.statusCode ?? 200 } };
      },
    );
}

export type ApiHandler = ReturnType<typeof createApiHandler>;
