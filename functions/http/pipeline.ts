import { createHash, randomUUID } from "node:crypto";
import middy from "@middy/core";
import httpRouterHandler from "@middy/http-router";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import type { z } from "zod";
import { type AppContext, inTransaction } from "../context.js";
import { type AuditEntry, type AuditOutcome, GLOBAL_NAMESPACE } from "../core/audit/audit.js";
import { effectiveNamespace, hashApiKey, type Principal, requireScope } from "../core/auth/api-keys.js";
import { RequestLimits } from "../core/auth/rate-limit.js";
import {
  Conflict,
  callerError,
  DatabaseStorageFull,
  DatabaseUnavailable,
  exposedError,
  Forbidden,
  issuesToDetails,
  MethodNotAllowed,
  PayloadTooLarge,
  RouteNotFound,
  type TmeError,
  TooManyRequests,
  Unauthenticated,
  UnsupportedMediaType,
  ValidationFailed,
} from "../core/errors.js";
import { idOf } from "../core/ids.js";
import { type Logger, lazyChild } from "../logging/logger.js";
import {
  errorResult,
  lowercaseHeaders,
  parseQuery,
  rawBody,
  toResult,
  withSecurityHeaders,
} from "./api-gateway.js";
import type { AnyRoute, ApiRequest, ApiResponse, Method } from "./route.js";
import { assertStorableJson, assertUtf8Query, decodeUtf8Body } from "./safe-input.js";

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
    parsed = JSON.parse(decodeUtf8Body(bytes));
  } catch (error) {
    if (error instanceof ValidationFailed) throw error;
    throw new ValidationFailed(`body is not valid JSON: ${(error as Error).message}`, [
      { path: "(body)", message: "not valid JSON" },
    ]);
  }
  assertStorableJson(parsed, "body");
  return parsed;
}

/** What the local edge found when it authenticated a request before reading its body. */
interface EdgeAuthorizer {
  lambda?: { tmePrincipal?: Principal };
}

/** Who is asking: the key in Authorization, checked against the store on every request. */
class Authenticator {
  private readonly limits: RequestLimits;

  constructor(private readonly app: AppContext) {
    this.limits = new RequestLimits(app.config.app.security);
  }

  /**
   * A source that spent its refused authentications gets 429 whatever it sends (so guessing
   * cannot go on at full speed, reading 429 as "wrong"); each refusal is an audit row.
   */
  async authenticate(
    headers: Record<string, string>,
    context: { sourceIp: string; requestId: string; route: string },
  ): Promise<Principal> {
    const blocked = this.limits.sourceBlockedFor(context.sourceIp);
    if (blocked > 0) {
      throw new TooManyRequests(
        `too many refused authentications from ${context.sourceIp}; retry in ${blocked} s`,
        blocked,
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? "");
    const principal = match ? await this.app.apiKeys.findByHash(hashApiKey(match[1]!)) : undefined;
    if (!principal) {
      const reason = match ? "invalid, revoked or expired API key" : "missing API key";
      this.limits.recordFailure(context.sourceIp);
      await this.app.audit.append({
        actor: null,
        actor_name: null,
        namespace: GLOBAL_NAMESPACE,
        action: "auth.refused",
        target: context.route,
        request_id: context.requestId,
        source_ip: context.sourceIp,
        outcome: "refused",
        status: 401,
        details: { reason },
      });
      throw new Unauthenticated(
        match ? "invalid, revoked or expired API key" : "missing API key: send Authorization: Bearer <key>",
      );
    }
    const wait = this.limits.takeRequest(principal.keyId);
    if (wait > 0)
      throw new TooManyRequests(`this API key is over its request rate; retry in ${wait} s`, wait);
    return principal;
  }
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
  audit: (tx: AppContext, response: ApiResponse) => Promise<void>,
): Promise<ApiResponse> {
  if (key.length > 255) {
    throw new ValidationFailed("Idempotency-Key is longer than 255 characters", [
      { path: "headers.idempotency-key", message: "at most 255 characters" },
    ]);
  }
  const scope = { namespace: req.namespace, route: `${route.method} ${route.path}`, key };
  const requestHash = createHash("sha256").update(canonicalJson(req.body)).digest("hex");
  return inTransaction(app, async (tx) => {
    const previous = await tx.idempotency.lockAndFind(scope);
    if (previous) {
      if (previous.requestHash !== requestHash) {
        throw new Conflict(
          "idempotency_key_reused",
          "this Idempotency-Key was used with a different request body",
          [{ path: "headers.idempotency-key", message: "reuse a key only with the identical body" }],
        );
      }
      const replay = {
        status: 200,
        body: previous.body,
        headers: { "Idempotent-Replayed": "true" },
      };
      await audit(tx, replay);
      return replay;
    }
    const response = await route.handle(req, tx);
    if (response.status >= 200 && response.status < 300) {
      await tx.idempotency.record(scope, {
        requestHash,
        status: response.status,
        body: withoutSecrets(response.body, route.secretFields),
      });
      await audit(tx, response);
    }
    return response;
  });
}

/**
 * The response as an Idempotency-Key replay may show it: each secret field (shown once, in the
 * original response) null, with a note saying so. The secret itself is never stored.
 */
export function withoutSecrets(body: unknown, fields: readonly string[] | undefined): unknown {
  if (!fields || fields.length === 0 || !body || typeof body !== "object" || Array.isArray(body)) return body;
  const copy: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  for (const field of fields) {
    if (copy[field] === undefined) continue;
    copy[field] = null;
    copy[`${field}_note`] =
      "shown once, in the response that created it; it is not stored, so this replay cannot repeat it";
  }
  return copy;
}

function targetOf(params: unknown, response: ApiResponse): string | null {
  const fromParams = params && typeof params === "object" ? Object.values(params as object)[0] : undefined;
  if (typeof fromParams === "string") return fromParams;
  return idOf(response.body);
}

async function runRoute(
  route: AnyRoute,
  event: Event,
  context: TmeContext,
  app: AppContext,
  auth: Authenticator,
): Promise<Result> {
  const { requestId, logger, headers } = context.tme!;
  const sourceIp = event.requestContext?.http?.sourceIp ?? "unknown";
  const action = route.auditAction ?? `${route.method} ${route.path}`;
  const mutating = route.method !== "GET";
  // Size first (cheap, and protects the rest), then who is asking, then what they sent. The
  // local edge has done both before reading the body; API Gateway buffers it for us.
  const body = rawBody(event);
  if (body.length > MAX_BODY_BYTES) throw new PayloadTooLarge(MAX_BODY_BYTES);
  const fromEdge = (event.requestContext as { authorizer?: EdgeAuthorizer } | undefined)?.authorizer?.lambda
    ?.tmePrincipal;
  const principal =
    route.scope === "public"
      ? undefined
      : (fromEdge ?? (await auth.authenticate(headers, { sourceIp, requestId, route: action })));

  let namespace = principal?.namespace ?? "default";
  let target: string | null = null;
  const entryOf = (
    who: Principal,
    about: string | null,
    outcome: AuditOutcome,
    status: number,
    code?: string,
  ): AuditEntry => ({
    actor: who.keyId,
    actor_name: who.name,
    namespace,
    action,
    target: about,
    request_id: requestId,
    source_ip: sourceIp,
    outcome,
    status,
    details: code ? { error: code } : {},
  });
  /** `on`: the context the row is written through (a transaction's joins it). */
  const audit = async (on: AppContext, outcome: AuditOutcome, status: number, code?: string) => {
    if (!principal || (!mutating && outcome !== "forbidden")) return;
    await on.audit.append(entryOf(principal, target, outcome, status, code));
  };

  try {
    const rawQuery = parseQuery(event);
    assertUtf8Query(event.rawQueryString);
    assertStorableJson(rawQuery, "query");
    const { namespace: requestedNamespace, ...query } = rawQuery;
    if (principal && route.scope !== "public") {
      namespace = effectiveNamespace(principal, requestedNamespace);
      requireScope(principal, route.scope);
    }
    const hasBody = route.method !== "GET" && route.method !== "DELETE";
    const rawJson = hasBody && route.body ? parseJsonBody(body, headers) : undefined;
    const decodedParams = Object.fromEntries(
      Object.entries(event.pathParameters ?? {}).map(([k, v]) => [k, decodePathParameter(k, v ?? "")]),
    );
    assertStorableJson(decodedParams, "path");
    target = targetOf(decodedParams, { status: 0 });

    const req: ApiRequest = {
      method: route.method,
      path: event.rawPath,
      body: validate(route.body, rawJson, "body"),
      query: validate(route.query, query, "query") ?? query,
      params: validate(route.params, decodedParams, "path") ?? decodedParams,
      headers,
      principal,
      namespace,
      requestedNamespace: principal ? requestedNamespace : undefined,
      requestId,
      sourceIp,
      logger,
      auditEntry:
        principal && mutating ? (about, status) => entryOf(principal, about, "ok", status) : undefined,
    };

    const idempotencyKey = headers["idempotency-key"];
    let response: ApiResponse;
    if (route.idempotent && idempotencyKey !== undefined) {
      response = await runIdempotent(route, req, app, idempotencyKey, async (tx, r) => {
        target = targetOf(req.params, r);
        if (!r.audited) await audit(tx, "ok", r.status);
      });
    } else {
      response = await route.handle(req, app);
      target = targetOf(req.params, response);
      if (response.status < 400 && !response.audited) await audit(app, "ok", response.status);
    }
    return withSecurityHeaders(toResult(response, requestId), route.scope !== "public");
  } catch (error) {
    const status = exposedError(error)?.status ?? 500;
    const code = exposedError(error)?.code ?? "internal_error";
    // The change did not happen; the row says who tried what and why it was refused.
    await audit(app, error instanceof Forbidden ? "forbidden" : "failed", status, code).catch((auditError) =>
      logger.error({ err: auditError }, "audit write failed"),
    );
    throw error;
  }
}

function failureResult(app: AppContext, error: unknown, logger: Logger, requestId: string): Result {
  let tmeError: TmeError;
  const databaseFailure = app.databaseFailureOf(error);
  if (databaseFailure === "storage_full") {
    // Reported once a minute by the database itself (runtime.ts); a line per request adds nothing.
    tmeError = error instanceof DatabaseStorageFull ? error : new DatabaseStorageFull(error);
  } else if (databaseFailure === "unavailable") {
    const cause = ((error as Error).cause ?? error) as Error & { code?: string };
    // The reason on its own too: a TLS error carries its socket, which the serializer cannot print.
    logger.warn({ err: cause, reason: cause.message, code: cause.code }, "database unavailable");
    tmeError = error instanceof DatabaseUnavailable ? error : new DatabaseUnavailable(error);
  } else {
    if (!exposedError(error)) logger.error({ err: error }, "unhandled error");
    tmeError = callerError(error, requestId);
  }
  if (tmeError.status < 500) logger.info({ code: tmeError.code, status: tmeError.status }, tmeError.message);
  return errorResult(tmeError, requestId);
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
  const auth = new Authenticator(app);
  const router = httpRouterHandler<Event, Result>({
    routes: routes.map((route) => ({
      method: route.method,
      path: route.path,
      handler: (event: Event, context: Context) => {
        (context as TmeContext).tmeRoute = route.path;
        return runRoute(route, event, context as TmeContext, app, auth);
      },
    })),
    notFoundResponse: ({ method, path }) => {
      const allowed = allowedMethods(path);
      throw allowed.length > 0
        ? new MethodNotAllowed(method, path, allowed)
        : new RouteNotFound(method, path);
    },
  });

  const middyHandler = middy<Event, Result, Error, Context>()
    .use({
      before: (request) => {
        const headers = lowercaseHeaders(request.event.headers);
        const incoming = headers["x-request-id"];
        const requestId =
          incoming && /^[\w.:-]{1,128}$/.test(incoming)
            ? incoming
            : (request.event.requestContext?.requestId ?? randomUUID());
        const logger = lazyChild(app.logger, { request_id: requestId });
        (request.context as TmeContext).tme = { requestId, logger, startedAt: Date.now(), headers };
      },
      after: (request) => {
        if (!app.logger.isLevelEnabled("debug")) return;
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
        request.response = failureResult(app, request.error, tme.logger, tme.requestId);
      },
    })
    .handler(router as unknown as (event: Event, context: Context) => Promise<Result>);

  const handler = (event: Event, context: Context): Promise<Result> =>
    app.observer.request(
      event.requestContext?.http?.method ?? "GET",
      lowercaseHeaders(event.headers),
      async () => {
        const value = await middyHandler(event, context);
        const route = (context as TmeContext).tmeRoute ?? "unmatched";
        return { value, end: { route, status: value?.statusCode ?? 200 } };
      },
    );
  const routeOf = routeMatcher(routes);
  /**
   * For the local edge: authenticates a request from its headers alone, before a byte of its
   * body is read. Undefined principal: a public or unknown route (the handler answers it).
   * A refusal comes back as the response to send, exactly as the handler would send it.
   */
  const authorize = async (event: Event): Promise<{ principal?: Principal } | { response: Result }> => {
    const route = routeOf(event.requestContext.http.method, event.rawPath);
    if (!route || route.scope === "public") return {};
    const headers = lowercaseHeaders(event.headers);
    const incoming = headers["x-request-id"];
    const requestId =
      incoming && /^[\w.:-]{1,128}$/.test(incoming) ? incoming : event.requestContext.requestId;
    try {
      const principal = await auth.authenticate(headers, {
        sourceIp: event.requestContext.http.sourceIp,
        requestId,
        route: route.auditAction ?? `${route.method} ${route.path}`,
      });
      return { principal };
    } catch (error) {
      return { response: failureResult(app, error, app.logger.child({ request_id: requestId }), requestId) };
    }
  };
  return Object.assign(handler, { authorize });
}

/** The route a method and path reach, as the router would pick it (literal paths first). */
function routeMatcher(routes: AnyRoute[]): (method: string, path: string) => AnyRoute | undefined {
  const compiled = routes
    .map((route) => ({
      route,
      literal: !route.path.includes("{"),
      pattern: new RegExp(`^${route.path.replace(/\{[^}]+\}/g, "[^/]+")}/?$`),
    }))
    .sort((a, b) => Number(b.literal) - Number(a.literal));
  return (method, path) => compiled.find((c) => c.route.method === method && c.pattern.test(path))?.route;
}

export type ApiHandler = ReturnType<typeof createApiHandler>;
