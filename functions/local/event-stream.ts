import type http from "node:http";
import { TASK_EVENTS_CHANNEL } from "../adapters/postgres/event-writer.js";
import { PostgresListener } from "../adapters/postgres/listener.js";
import { latestTaskEventSeq, taskEventsAfter } from "../adapters/postgres/task-event-feed.js";
import type { AppContext } from "../context.js";
import { effectiveNamespace, type Principal, requireScope } from "../core/auth/api-keys.js";
import { callerError, exposedError, TmeError, Unauthenticated } from "../core/errors.js";
import { securityHeaders } from "../http/api-gateway.js";
import { DASHBOARD_CSP } from "../http/routes/dashboard-files.js";
import type { StreamHandler } from "./http-server.js";
import type { BackgroundService } from "./runtime.js";
import { wakeableLoop } from "./wakeable-loop.js";

/** What a client may have queued unsent before it is dropped: a slow reader costs this, not more. */
const MAX_BUFFERED_BYTES = 256 * 1024;
const MAX_CLIENTS = 200;
const HEARTBEAT_MS = 15_000;
/** NOTIFY wakes the feed; this poll catches what a lost notification would have delayed. */
const POLL_MS = 1000;
const BATCH = 500;

interface Client {
  namespace: string;
  res: http.ServerResponse;
}

export interface TaskEventStream extends BackgroundService {
  handler: StreamHandler;
  clientCount(): number;
}

/**
 * GET /stream in the local runtime: one feed for every client. It tails task_events by id,
 * woken by the NOTIFY every write of task events sends (TASK_EVENTS_CHANNEL), and only while
 * someone listens. An id is taken before its transaction commits, so a slow transaction may
 * commit an id below one already read and be missed: the stream is a hint of what changed, and
 * the dashboard re-reads its views now and then as well.
 */
export function taskEventStream(app: AppContext): TaskEventStream {
  const clients = new Set<Client>();
  const listener = new PostgresListener(app.databaseUrl, app.logger);
  let after: string | undefined;
  let poll: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  const drop = (client: Client) => {
    clients.delete(client);
    client.res.destroy();
  };

  const send = (client: Client, chunk: string) => {
    if (client.res.writableLength > MAX_BUFFERED_BYTES) {
      app.logger.info({ namespace: client.namespace }, "stream client does not keep up; dropped");
      drop(client);
      return;
    }
    client.res.write(chunk);
  };

  const loop = wakeableLoop(
    async (pass) => {
      if (clients.size === 0) {
        after = undefined;
        return;
      }
      after ??= await latestTaskEventSeq(app.db);
      const namespaces = [...new Set([...clients].map((c) => c.namespace))];
      for (;;) {
        const events = await taskEventsAfter(app.db, after, namespaces, BATCH);
        for (const event of events) {
          const { seq, namespace, ...rest } = event;
          const chunk = `id: ${seq}\nevent: task\ndata: ${JSON.stringify(rest)}\n\n`;
          for (const client of clients) if (client.namespace === namespace) send(client, chunk);
          after = seq;
        }
        if (events.length < BATCH || pass.stopped) break;
      }
    },
    (error) => app.logger.warn({ err: error }, "event stream"),
  );

  const refuse = (res: http.ServerResponse, requestId: string, error: TmeError) => {
    res.writeHead(error.status, {
      ...securityHeaders(),
      ...error.headers,
      "Content-Type": "application/json; charset=utf-8",
      "Cache-Control": "no-store",
      "X-Request-Id": requestId,
    });
    res.end(JSON.stringify({ error: { code: error.code, message: error.message, details: error.details } }));
  };

  const handler: StreamHandler = (req, res, principal, requestId) => {
    try {
      if (!principal) throw new Unauthenticated("missing API key: send Authorization: Bearer <key>");
      const key = principal as Principal;
      requireScope(key, "tasks:read");
      const requested =
        new URL(req.url ?? "/", "http://localhost").searchParams.get("namespace") ?? undefined;
      const namespace = effectiveNamespace(key, requested);
      if (clients.size >= MAX_CLIENTS) {
        throw new TmeError(503, "too_many_streams", "too many open streams; poll instead or retry later", {
          headers: { "Retry-After": "10" },
        });
      }
      res.writeHead(200, {
        ...securityHeaders(),
        "Content-Security-Policy": DASHBOARD_CSP,
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
        "X-Request-Id": requestId,
      });
      res.flushHeaders();
      const client: Client = { namespace, res };
      clients.add(client);
      res.write(`event: hello\ndata: ${JSON.stringify({ namespace })}\n\n`);
      req.socket.setNoDelay(true);
      res.on("close", () => clients.delete(client));
      loop.wake();
    } catch (error) {
      if (!exposedError(error)) app.logger.error({ err: error }, "stream");
      refuse(res, requestId, callerError(error, requestId));
    }
  };

  return {
    name: "event-stream",
    handler,
    clientCount: () => clients.size,
    async start() {
      listener.on(TASK_EVENTS_CHANNEL, () => loop.wake()).onReconnect(() => loop.wake());
      await listener.start();
      poll = setInterval(() => clients.size > 0 && loop.wake(), POLL_MS);
      poll.unref();
      heartbeat = setInterval(() => {
        for (const client of clients) send(client, ": keep-alive\n\n");
      }, HEARTBEAT_MS);
      heartbeat.unref();
    },
    async stop() {
      clearInterval(poll);
      clearInterval(heartbeat);
      for (const client of clients) {
        clients.delete(client);
        client.res.end();
      }
      await loop.stop();
      await listener.stop();
    },
  };
}
