import pg from "pg";
import type { Logger } from "../../logging/logger.js";

const LIVENESS_INTERVAL_MS = 15_000;
const LIVENESS_TIMEOUT_MS = 10_000;

/**
 * One dedicated connection that LISTENs on channels and calls back on NOTIFY. When the
 * connection drops it reconnects with backoff, and calls onReconnect so the owner can catch
 * up on what it may have missed: notifications are a wake-up, never the only path to work.
 */
export class PostgresListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retryMs = 250;
  private liveness: NodeJS.Timeout | undefined;
  private readonly handlers = new Map<string, Array<(payload: string) => void>>();
  private readonly reconnectHandlers: Array<() => void> = [];

  constructor(
    private readonly connectionString: string,
    private readonly logger: Logger,
  ) {}

  on(channel: string, handler: (payload: string) => void): this {
    this.handlers.set(channel, [...(this.handlers.get(channel) ?? []), handler]);
    return this;
  }

  onReconnect(handler: () => void): this {
    this.reconnectHandlers.push(handler);
    return this;
  }

  async start(): Promise<void> {
    await this.connect(false);
  }

  private async connect(isReconnect: boolean): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: "tme-listener",
      connectionTimeoutMillis: 5000,
      query_timeout: LIVENESS_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client.on("notification", (message) => {
      for (const handler of this.handlers.get(message.channel) ?? []) handler(message.payload ?? "");
    });
    client.on("error", (error) => {
      this.logger.warn({ err: error.message }, "listener connection lost; reconnecting");
      void this.reconnect(client);
    });
    client.on("end", () => void this.reconnect(client));
    try {
      await client.connect();
      for (const channel of this.handlers.keys())
        await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
      this.client = client;
      this.retryMs = 250;
      this.watch(client);
      if (isReconnect) for (const handler of this.reconnectHandlers) handler();
    } catch (error) {
      await client.end().catch(() => {});
      if (!isReconnect) throw error;
      this.logger.warn({ err: (error as Error).message, retry_ms: this.retryMs }, "listener cannot connect");
      setTimeout(() => void this.connect(true), this.retryMs).unref();
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
    }
  }

  private async reconnect(dead: pg.Client): Promise<void> {
    if (this.client !== dead || this.stopped) return;
    this.client = undefined;
    clearInterval(this.liveness);
    // Scheduled first: ending a connection whose peer is unreachable may never finish.
    setTimeout(() => void this.connect(true), this.retryMs).unref();
    await dead.end().catch(() => {});
  }

  /**
   * A connection cut without a FIN or RST (a network partition, a frozen proxy) looks alive
   * and delivers nothing; a periodic query that must answer finds it, and it is replaced.
   */
  private watch(client: pg.Client): void {
    clearInterval(this.liveness);
    this.liveness = setInterval(() => {
      if (this.client !== client) return;
      client.query("SELECT 1").catch((error: Error) => {
        this.logger.warn({ err: error.message }, "listener connection does not answer; reconnecting");
        void this.reconnect(client);
      });
    }, LIVENESS_INTERVAL_MS);
    this.liveness.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.liveness);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }
}
