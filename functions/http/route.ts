import type { z } from "zod";
import type { AppContext } from "../context.js";
import type { AuditEntry } from "../core/audit/audit.js";
import type { Principal, Scope } from "../core/auth/api-keys.js";
import type { Logger } from "../logging/logger.js";

export type Method = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";

/** A request after the edge has authenticated and validated it. */
export interface ApiRequest<B = unknown, Q = unknown, P = unknown> {
  method: Method;
  path: string;
  body: B;
  query: Q;
  params: P;
  /** Header names lowercased. */
  headers: Record<string, string>;
  /** Undefined only on public routes. */
  principal: Principal | undefined;
  /** The namespace the request acts in (the key's, or ?namespace= for admins). */
  namespace: string;
  /** ?namespace= as the caller sent it (validated), for routes that span namespaces (GET /audit). */
  requestedNamespace: string | undefined;
  requestId: string;
  sourceIp: string;
  logger: Logger;
  /**
   * The audit row this call writes if it succeeds with `status`, about `target`; undefined when
   * the call is not audited (a read, a public route). A route that writes it in its own commit
   * answers `audited: true`, and the pipeline writes no other.
   */
  auditEntry?: (target: string | null, status: number) => AuditEntry;
}

export interface ApiResponse {
  status: number;
  /** Serialised as JSON unless `text` is given. */
  body?: unknown;
  /** A non-JSON body (HTML, Prometheus text, an asset), sent with `contentType`. */
  text?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  /** The route wrote the call's audit row (req.auditEntry) in the same commit as its change. */
  audited?: boolean;
}

/** How a route appears in /openapi.json. */
export interface RouteDocs {
  summary: string;
  tags: string[];
  description?: string;
  responses: Record<number, { description: string; schema?: z.ZodType }>;
}

export interface Route<B = unknown, Q = unknown, P = unknown> {
  method: Method;
  /** API Gateway style: /task/{task_id} */
  path: string;
  /** "public" routes skip authentication (/health, the docs, the dashboard shell); a list: any one of them. */
  scope: Scope | readonly Scope[] | "public";
  body?: z.ZodType<B>;
  query?: z.ZodType<Q>;
  params?: z.ZodType<P>;
  /** Honour the Idempotency-Key header (creating POSTs). */
  idempotent?: boolean;
  /**
   * Response fields holding a secret shown once (a signing secret, a new API key): an
   * Idempotency-Key replay answers them as null with a note, and they are never stored.
   */
  secretFields?: readonly string[];
  /** Audit action recorded for a successful call, e.g. "task.create"; default for POST/PATCH/DELETE is method + path. */
  auditAction?: string;
  docs: RouteDocs;
  handle(req: ApiRequest<B, Q, P>, app: AppContext): Promise<ApiResponse>;
}

/** Keeps the body/query/params types of a route tied to its schemas. */
export function defineRoute<B = undefined, Q = undefined, P = undefined>(
  route: Route<B, Q, P>,
): Route<B, Q, P> {
  return route;
}

// biome-ignore lint/suspicious/noExplicitAny: a list of routes of different request types
export type AnyRoute = Route<any, any, any>;
