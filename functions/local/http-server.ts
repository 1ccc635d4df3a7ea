import { isUtf8 } from "node:buffer";
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { withFields } from "../core/objects.js";
import { securityHeaders } from "../http/api-gateway.js";
import { MAX_BODY_BYTES } from "../http/pipeline.js";

type LambdaHttpHandler = ((
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>) & {
  /** Authenticates from the headers alone (the API handler has one: pipeline.ts). */
  authorize?: (
    event: APIGatewayProxyEventV2,
  ) => Promise<{ principal?: unknown } | { response: APIGatewayProxyStructuredResultV2 }>;
};

/** What the local edge allows a client, before any of it reaches the API handler. */
export interface EdgeLimits {
  /** Larger bodies are refused with 413 as soon as the stream passes this (or Content-Length says so). */
  max_body_bytes: number;
  max_connections: number;
  max_connections_per_source: number;
  header_timeout_seconds: number;
  body_timeout_seconds: number;
  /**
   * Bytes of request bodies being read or handled at once: each request with a body reserves
   * its Content-Length (at least BODY_RESERVATION_FLOOR, all of max_body_bytes when the length
   * is not declared) until it is answered; the others wait with their socket paused (TCP pushes
   * back, nothing is buffered). Bounds the edge's memory at about this many bytes times a few
   * copies, however many clients send at once, while small bodies (a create is a few hundred
   * bytes) are not held to the number of large ones the budget allows.
   */
  body_bytes_in_flight: number;
}

/**
 * The least a request with a body reserves of body_bytes_in_flight: what handling it costs
 * beyond its body (the event, its parsed copies, the answer), so a flood of one-byte bodies is
 * bounded too.
 */
export const BODY_RESERVATION_FLOOR = 16 * 1024;

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  max_body_bytes: MAX_BODY_BYTES,
  max_connections: 512,
  max_connections_per_source: 64,
  header_timeout_seconds: 10,
  body_timeout_seconds: 30,
  // 16 bodies of the largest size (4 MiB): 256 small requests at once.
  body_bytes_in_flight: 16 * MAX_BODY_BYTES,
};

/**
 * A budget of bytes: acquire(n) waits until n fit beside what is held, in arrival order (a large
 * request is not passed over forever by small ones behind it).
 */
export function byteBudget(size: number) {
  let held = 0;
  const waiting: Array<{ bytes: number; grant: () => void }> = [];
  const grantWaiting = () => {
    while (waiting.length > 0 && held + waiting[0]!.bytes <= size) {
      const next = waiting.shift()!;
      held += next.bytes;
      next.grant();
    }
  };
  return {
    async acquire(requested: number): Promise<() => void> {
      const bytes = Math.min(requested, size);
      if (waiting.length === 0 && held + bytes <= size) held += bytes;
      else await new Promise<void>((grant) => waiting.push({ bytes, grant }));
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held -= bytes;
        grantWaiting();
      };
    },
  };
}

/**
 * A response the edge itself keeps open (server-sent events): it gets the request once its key
 * has been checked from the headers, and owns the response from then on. The principal is
 * undefined when the handler has no authorize (a test edge): the stream must then refuse.
 */
export type StreamHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  principal: unknown,
  requestId: string,
) => void;

/** How long a refused client may go on sending (read and dropped) before its socket is closed. */
const LINGER_MS = 2000;

/** An API Gateway HTTP API (payload 2.0) event, as AWS would build it for this request. */
export function toApiGatewayEvent(req: http.IncomingMessage, body: Buffer): APIGatewayProxyEventV2 {
  const url = new URL(req.url ?? "/", "http://localhost");
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(",") : value;
  }
  const now = new Date();
  const requestId = randomUUID();
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    cookies: headers.cookie?.split(/;\s*/),
    headers,
    requestContext: {
      accountId: "local",
      apiId: "local",
      domainName: headers.host ?? "localhost",
      domainPrefix: "localhost",
      http: {
        method: req.method ?? "GET",
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        userAgent: headers["user-agent"] ?? "",
      },
      requestId,
      routeKey: "$default",
      stage: "$default",
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    body: body.length > 0 ? body.toString("base64") : undefined,
    isBase64Encoded: body.length > 0,
  };
}

function lambdaContext(requestId: string): Context {
  const deadline = Date.now() + 30_000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: "tme-api-local",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:local:000000000000:function:tme-api-local",
    memoryLimitInMB: "1024",
    awsRequestId: requestId,
    logGroupName: "local",
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

export interface LocalHttpServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * The local stand-in for API Gateway: every request becomes a v2 event for the API Lambda handler.
 * Unlike API Gateway it never buffers what it has not accepted: the key is checked from the
 * headers before a byte of the body is read, the body is counted as it streams and refused with
 * 413 the moment it passes the limit, slow clients are cut off by header and body timeouts, and
 * connections are capped in all and per source address.
 */
export async function startHttpServer(
  handler: LambdaHttpHandler,
  port: number,
  onError: (error: unknown) => void,
  host = "127.0.0.1",
  limits: Partial<EdgeLimits> = {},
  /** GET paths the edge streams itself (the Lambda handler cannot): /stream. */
  streams: Record<string, StreamHandler> = {},
): Promise<LocalHttpServer> {
  const edge = { ...DEFAULT_EDGE_LIMITS, ...limits };
  const openBySource = new Map<string, number>();
  const bodyBytes = byteBudget(edge.body_bytes_in_flight);
  /** Open streams never end by themselves: close() ends them so it need not wait for them. */
  const streaming = new Set<http.ServerResponse>();
  let open = 0;

  /** Answers without reading (the rest of) the body: sent, then the socket is closed. */
  const refuse = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    result: APIGatewayProxyStructuredResultV2,
  ) => {
    const body = Buffer.from(result.body ?? "", result.isBase64Encoded ? "base64" : "utf8");
    res.writeHead(result.statusCode ?? 500, {
      ...securityHeaders(),
      ...result.headers,
      "Content-Length": String(body.length),
      Connection: "close",
    });
    res.end(body);
    // Whatever the client still sends is dropped unread (no memory), for a moment, so it can
    // read the answer before the socket closes instead of meeting a reset.
    req.removeAllListeners("data");
    req.resume();
    res.once("finish", () => {
      req.socket.end();
      setTimeout(() => req.socket.destroy(), LINGER_MS).unref();
    });
  };

  const tooLarge = (requestId: string): APIGatewayProxyStructuredResultV2 => ({
    statusCode: 413,
    headers: { "Content-Type": "application/json", "X-Request-Id": requestId },
    body: JSON.stringify({
      error: {
        code: "payload_too_large",
        message: `request body exceeds ${edge.max_body_bytes} bytes`,
        details: [],
      },
    }),
  });

  const serve = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const event = toApiGatewayEvent(req, Buffer.alloc(0));
    const requestId = event.requestContext.requestId;
    let principal: unknown;
    if (handler.authorize) {
      const verdict = await handler.authorize(event);
      if ("response" in verdict) return refuse(req, res, verdict.response);
      principal = verdict.principal;
    }
    const stream =
      req.method === "GET" && Object.hasOwn(streams, event.rawPath) ? streams[event.rawPath] : undefined;
    if (stream) {
      streaming.add(res);
      res.once("close", () => streaming.delete(res));
      return stream(req, res, principal, requestId);
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > edge.max_body_bytes) return refuse(req, res, tooLarge(requestId));
    const hasBody = declared > 0 || req.headers["transfer-encoding"] !== undefined;
    const release = hasBody
      ? await bodyBytes.acquire(
          declared > 0 ? Math.max(declared, BODY_RESERVATION_FLOOR) : edge.max_body_bytes,
        )
      : () => {};
    try {
      await readAndHandle(req, res, event, requestId, principal);
    } finally {
      release();
    }
  };

  const readAndHandle = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    event: APIGatewayProxyEventV2,
    requestId: string,
    principal: unknown,
  ) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const complete = await new Promise<boolean>((resolve) => {
      // A client that went away while its request waited (for its key check, for its share of the body budget)
      // has already had its 'close': without this the wait below would never end, and the
      // slot it holds would be lost for good (16 such and no request with a body is served).
      if (req.destroyed) {
        resolve(req.complete);
        return;
      }
      req.on("close", () => resolve(req.complete));
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > edge.max_body_bytes) {
          chunks.length = 0;
          resolve(false);
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () => resolve(true));
      req.on("error", () => resolve(false));
      req.on("aborted", () => resolve(false));
    });
    if (!complete) {
      if (size > edge.max_body_bytes && !res.headersSent) refuse(req, res, tooLarge(requestId));
      return;
    }
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    chunks.length = 0;
    if (body.length > 0) {
      // As API Gateway does: text as it is (one copy fewer than base64), other bytes in base64
      // (so the pipeline can name the offset of invalid UTF-8).
      const text = isUtf8(body);
      event.body = body.toString(text ? "utf8" : "base64");
      event.isBase64Encoded = !text;
    }
    if (principal !== undefined) {
      // As an API Gateway authorizer would hand it on; the pipeline skips its own lookup.
      (event.requestContext as { authorizer?: unknown }).authorizer = { lambda: { tmePrincipal: principal } };
    }
    const result = await handler(event, lambdaContext(requestId));
    const out = result.body
      ? Buffer.from(result.body, result.isBase64Encoded ? "base64" : "utf8")
      : Buffer.alloc(0);
    res.writeHead(
      result.statusCode ?? 200,
      withFields(result.headers ?? {}, { "Content-Length": String(out.length) }) as http.OutgoingHttpHeaders,
    );
    res.end(out);
  };

  const server = http.createServer(
    {
      headersTimeout: edge.header_timeout_seconds * 1000,
      requestTimeout: (edge.header_timeout_seconds + edge.body_timeout_seconds) * 1000,
      // Node checks both timeouts on this interval (30 s by default, longer than the limits).
      connectionsCheckingInterval: 1000,
    },
    (req, res) => {
      serve(req, res).catch((error) => {
        onError(error);
        if (res.headersSent) {
          res.destroy();
          return;
        }
        // API.md: every response carries X-Request-Id, this last-resort one included.
        refuse(req, res, {
          statusCode: 500,
          headers: { "Content-Type": "application/json", "X-Request-Id": randomUUID() },
          body: JSON.stringify({ error: { code: "internal_error", message: "internal error", details: [] } }),
        });
      });
    },
  );
  server.on("connection", (socket) => {
    const source = socket.remoteAddress ?? "unknown";
    const fromSource = openBySource.get(source) ?? 0;
    if (open >= edge.max_connections || fromSource >= edge.max_connections_per_source) {
      socket.destroy();
      return;
    }
    open++;
    openBySource.set(source, fromSource + 1);
    socket.once("close", () => {
      open--;
      const left = (openBySource.get(source) ?? 1) - 1;
      if (left <= 0) openBySource.delete(source);
      else openBySource.set(source, left);
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  return {
    url: `http://localhost:${actualPort}`,
    port: actualPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const res of streaming) res.end();
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 5000).unref();
      }),
  };
}
