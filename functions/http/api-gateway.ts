import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { TmeError } from "../core/errors.js";
import { withFields } from "../core/objects.js";
import type { ApiResponse } from "./route.js";

/** Header names lowercased; API Gateway v2 already joins repeated headers with commas. */
export function lowercaseHeaders(headers: APIGatewayProxyEventV2["headers"]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined) result[name.toLowerCase()] = value;
  }
  return result;
}

/** Query parameters from the raw query string; a repeated parameter becomes a comma list. */
export function parseQuery(event: APIGatewayProxyEventV2): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(event.rawQueryString ?? "")) {
    query[name] = name in query ? `${query[name]},${value}` : value;
  }
  return query;
}

export function rawBody(event: APIGatewayProxyEventV2): Buffer {
  if (!event.body) return Buffer.alloc(0);
  return Buffer.from(event.body, event.isBase64Encoded ? "base64" : "utf8");
}

export function toResult(response: ApiResponse, requestId: string): APIGatewayProxyStructuredResultV2 {
  const headers: Record<string, string> = { "X-Request-Id": requestId, ...response.headers };
  if (response.text !== undefined) {
    const isBinary = Buffer.isBuffer(response.text);
    return {
      statusCode: response.status,
      headers: { "Content-Type": response.contentType ?? "text/plain; charset=utf-8", ...headers },
      body: isBinary ? (response.text as Buffer).toString("base64") : (response.text as string),
      isBase64Encoded: isBinary,
    };
  }
  if (response.body === undefined) return { statusCode: response.status, headers };
  return {
    statusCode: response.status,
    headers: { "Content-Type": "application/json; charset=utf-8", ...headers },
    body: JSON.stringify(response.body),
  };
}

/**
 * What every response says about itself, whatever route made it: never sniff a type, never
 * frame it, never leak the URL in a Referer. JSON gets a CSP that allows nothing at all; an
 * HTML page (/docs, the dashboard) sets its own CSP, and gets this strict one if it forgot.
 */
const ALWAYS: Record<string, string> = {
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
};
export const STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export function securityHeaders(): Record<string, string> {
  return withFields(ALWAYS, { "Content-Security-Policy": STRICT_CSP });
}

/**
 * Adds the headers above, and `Cache-Control: no-store` to authenticated responses (what a
 * key can read must not stay in a shared or browser cache), unless the route chose its own.
 */
export function withSecurityHeaders(
  result: APIGatewayProxyStructuredResultV2,
  authenticated: boolean,
): APIGatewayProxyStructuredResultV2 {
  const headers: Record<string, string | number | boolean> = {};
  const present = new Set<string>();
  // Copied key by key, not spread then added to (see core/objects.ts withFields).
  for (const [name, value] of Object.entries(result.headers ?? {})) {
    headers[name] = value;
    present.add(name.toLowerCase());
  }
  for (const [name, value] of Object.entries(securityHeaders()))
    if (!present.has(name.toLowerCase())) headers[name] = value;
  if (authenticated && !present.has("cache-control")) headers["Cache-Control"] = "no-store";
  return { ...result, headers };
}

/** The one error shape of every TME response: `{ error: { code, message, details } }`. */
export function errorResult(error: TmeError, requestId: string): APIGatewayProxyStructuredResultV2 {
  const result = toResult(
    {
      status: error.status,
      headers: error.headers,
      body: { error: { code: error.code, message: error.message, details: error.details } },
    },
    requestId,
  );
  return withSecurityHeaders(result, true);
}
