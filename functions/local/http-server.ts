import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";

/** API Gateway refuses bodies over 10 MB before any Lambda runs; so does the local edge. */
const GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;

type LambdaHttpHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

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

/** The local stand-in for API Gateway: every request becomes a v2 event for the API Lambda handler. */
export async function startHttpServer(
  handler: LambdaHttpHandler,
  port: number,
  onError: (error: unknown) => void,
  host = "127.0.0.1",
): Promise<LocalHttpServer> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > GATEWAY_MAX_BODY_BYTES) {
        if (!refused) {
          refused = true;
          res.writeHead(413, {
            "Content-Type": "application/json",
            Connection: "close",
            "X-Request-Id": randomUUID(),
          });
          res.end(
            JSON.stringify({
              error: { code: "payload_too_large", message: "request body exceeds 10 MB", details: [] },
            }),
          );
          req.resume();
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", async () => {
      if (refused) return;
      try {
        const event = toApiGatewayEvent(req, Buffer.concat(chunks));
        const result = await handler(event, lambdaContext(event.requestContext.requestId));
        const body = result.body
          ? Buffer.from(result.body, result.isBase64Encoded ? "base64" : "utf8")
          : Buffer.alloc(0);
        res.writeHead(result.statusCode ?? 200, { ...result.headers, "Content-Length": String(body.length) });
        res.end(body);
      } catch (error) {
        onError(error);
        // API.md: every response carries X-Request-Id, this last-resort one included.
        res.writeHead(500, { "Content-Type": "application/json", "X-Request-Id": randomUUID() });
        res.end(
          JSON.stringify({ error: { code: "internal_error", message: "internal error", details: [] } }),
        );
      }
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
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 5000).unref();
      }),
  };
}
