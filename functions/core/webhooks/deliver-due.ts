import { hostname } from "node:os";
import type { AppConfig } from "../../config/schema.js";
import type { Logger } from "../../logging/logger.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { idOf, newId } from "../ids.js";
import type { Observer } from "../observability/observer.js";
import { type AttemptOutcome, type AttemptResult, buildWebhookRequest, judgeAttempt } from "./deliver.js";
import type { ClaimedDelivery, DeliveryStore } from "./delivery-store.js";
import { openAuth } from "./manage-subscriptions.js";
import type { WebhookSender } from "./webhook-sender.js";

/** What making attempts needs (an AppContext has it all). */
export interface DeliveryServices {
  deliveries: DeliveryStore;
  secrets: SecretBox;
  sendWebhook: WebhookSender;
  observer: Observer;
  config: { app: AppConfig };
  now: () => Date;
  logger: Logger;
}

/** A stable name for this process's claims, in logs and in deliveries.claimed_by. */
export function deliveryWorkerId(): string {
  return `${hostname()}:${process.pid}:${newId("dlv").slice(4, 12)}`;
}

/** Makes one claimed attempt and records it. Never throws for the endpoint's faults. */
export async function performAttempt(
  app: DeliveryServices,
  claimed: ClaimedDelivery,
  workerId: string,
  send: WebhookSender = app.sendWebhook,
): Promise<{ result: AttemptResult; outcome: AttemptOutcome }> {
  const taskId = taskIdOf(claimed.payload.data);
  const traceContext =
    app.observer.tracing && taskId ? await app.deliveries.traceContextOf(taskId).catch(() => null) : null;
  return app.observer.delivery(
    {
      deliveryId: claimed.id,
      subscriptionId: claimed.subscription_id,
      eventType: claimed.payload.type,
      taskId,
      traceContext,
    },
    async (traceHeaders) => {
      const attempt = await attemptOnce(app, claimed, workerId, send, traceHeaders);
      return {
        value: attempt,
        end: {
          outcome: attempt.outcome.status,
          latencyMs: attempt.result.latencyMs,
          httpStatus: attempt.result.status,
        },
      };
    },
  );
}

function taskIdOf(data: Record<string, unknown>): string | null {
  return idOf(data.task);
}

async function attemptOnce(
  app: DeliveryServices,
  claimed: ClaimedDelivery,
  workerId: string,
  send: WebhookSender,
  traceHeaders: Record<string, string>,
): Promise<{ result: AttemptResult; outcome: AttemptOutcome }> {
  const settings = app.config.app.webhooks;
  let result: AttemptResult;
  try {
    const auth = await openAuth(app.secrets, claimed, app.now());
    const request = buildWebhookRequest(claimed.payload, claimed.format, auth, app.now());
    result = await send({
      url: claimed.callback_url,
      // traceparent is outside the signed content (id.timestamp.body), so it never breaks a signature.
      headers: { ...request.headers, ...traceHeaders },
      body: request.body,
      timeoutMs: settings.timeout_seconds * 1000,
      maxResponseBytes: settings.max_response_bytes,
      allowPrivate: app.config.app.allow_private_callbacks,
    });
  } catch (error) {
    // Our side failed (a secret that does not open, a bug): recorded and retried like any failure.
    app.logger.error({ err: error, delivery_id: claimed.id }, "webhook attempt could not be made");
    result = {
      snippet: "",
      latencyMs: 0,
      error: `TME could not make the attempt: ${(error as Error).message}`,
    };
  }
  const outcome = judgeAttempt(result, {
    policy: {
      baseSeconds: settings.retry_base_seconds,
      giveUpAfterMs: settings.give_up_after_hours * 3_600_000,
    },
    now: app.now(),
    chainAttempt: claimed.chain_attempt,
    chainStartedAt: claimed.chain_started_at,
    retries: claimed.trigger !== "test",
  });
  const recorded = await app.deliveries.record(claimed, workerId, result, outcome, {
    disableAfterMs: app.config.app.alerts.endpoint_failing_hours * 3_600_000,
  });
  const log = {
    delivery_id: claimed.id,
    subscription_id: claimed.subscription_id,
    event_id: claimed.event_id,
    attempt: claimed.attempt,
    status: outcome.status,
    response_status: result.status,
    latency_ms: result.latencyMs,
  };
  if (outcome.status === "succeeded") app.logger.debug(log, "webhook delivered");
  else app.logger.info({ ...log, error: outcome.error }, "webhook attempt failed");
  if (recorded.disabled) {
    app.logger.warn(
      { subscription_id: claimed.subscription_id, cause: recorded.disabled },
      "subscription disabled",
    );
  }
  return { result, outcome };
}

/**
 * Keeps up to max_in_flight attempts running for this process. Each finished attempt frees its
 * slot at once (no batch waits for its slowest member), and the claim itself caps each endpoint
 * at per_endpoint_concurrency, so a hanging endpoint holds only its own slots.
 */
export class DeliveryPool {
  private readonly inFlight = new Set<Promise<unknown>>();
  private filling: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(
    private readonly app: DeliveryServices,
    readonly workerId: string,
    private readonly send: WebhookSender = app.sendWebhook,
    private readonly onSettled: () => void = () => {},
  ) {}

  get size(): number {
    return this.inFlight.size;
  }

  /** Claims due attempts into free slots; concurrent calls coalesce into one more pass. */
  fill(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.filling) {
      this.again = true;
      return this.filling;
    }
    this.filling = (async () => {
      try {
        do {
          this.again = false;
          await this.claimOnce();
        } while (this.again && !this.closed);
      } finally {
        this.filling = undefined;
      }
    })();
    return this.filling;
  }

  private async claimOnce(): Promise<number> {
    const settings = this.app.config.app.webhooks;
    const free = settings.max_in_flight - this.inFlight.size;
    if (free <= 0) return 0;
    const claimed = await this.app.deliveries.claimDue({
      workerId: this.workerId,
      limit: free,
      perEndpoint: settings.per_endpoint_concurrency,
      claimSeconds: settings.timeout_seconds + 30,
    });
    for (const delivery of claimed) {
      const attempt = performAttempt(this.app, delivery, this.workerId, this.send)
        .catch((error) => this.app.logger.error({ err: error, delivery_id: delivery.id }, "webhook attempt"))
        .finally(() => {
          this.inFlight.delete(attempt);
          this.onSettled();
        });
      this.inFlight.add(attempt);
    }
    return claimed.length;
  }

  /** Stops claiming and waits for the attempts in flight (each ends within its deadline). */
  async drain(): Promise<void> {
    this.closed = true;
    await this.filling?.catch(() => {});
    await Promise.allSettled([...this.inFlight]);
  }
}

/**
 * Claims and performs due attempts until none is due or the time budget is spent. The cloud
 * runs this from the webhook-dispatcher Lambda (after each fan-out) and from the reaper (for
 * retries that fall due later).
 */
export async function runDueDeliveries(
  app: DeliveryServices,
  options: { budgetMs: number; workerId?: string; send?: WebhookSender },
): Promise<{ attempts: number }> {
  const stopClaimingAt = Date.now() + options.budgetMs - app.config.app.webhooks.timeout_seconds * 1000;
  let attempts = 0;
  let signal: (() => void) | undefined;
  let settledUnseen = false;
  const pool = new DeliveryPool(app, options.workerId ?? deliveryWorkerId(), options.send, () => {
    attempts++;
    if (signal) {
      signal();
      signal = undefined;
    } else settledUnseen = true;
  });
  while (Date.now() < stopClaimingAt) {
    await pool.fill();
    if (pool.size === 0) break;
    // Sleep until an attempt finishes, then claim again into its slot.
    if (!settledUnseen) {
      await new Promise<void>((resolve) => {
        signal = resolve;
      });
    }
    settledUnseen = false;
  }
  await pool.drain();
  return { attempts };
}
