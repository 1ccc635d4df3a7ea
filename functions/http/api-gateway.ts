import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
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
