import type { TmeEvent } from "../events/event.js";
import type { Keyset, KeysetPage } from "../paging.js";
import type { AttemptOutcome, AttemptResult } from "./deliver.js";
import type { WebhookPayload } from "./payload.js";
import type { EndpointColumns, Subscription } from "./subscription-store.js";

export const DELIVERY_STATUSES = ["pending", "succeeded", "retrying", "failed", "given_up"] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** One webhook attempt (deliveries has a row per attempt). */
export interface Delivery {
  id: string;
  namespace: string;
  subscription_id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  chain_attempt: number;
  trigger: "event" | "retry" | "redeliver" | "test";
  status: DeliveryStatus;
  response_status: number | null;
  latency_ms: number | null;
  response_snippet: string | null;
  error: string | null;
  next_attempt_at: Date | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

/** An event as the dispatcher receives it (the TmeEvent of the outbox). */
export interface DispatchableEvent extends WebhookPayload {
  namespace: string;
}

/** Everything one attempt needs, read when it is claimed: the attempt, its event, its endpoint. */
export type ClaimedDelivery = Pick<
  Delivery,
  "id" | "namespace" | "subscription_id" | "event_id" | "event_type" | "attempt" | "chain_attempt" | "trigger"
> &
  Pick<Subscription, EndpointColumns> & {
    chain_started_at: Date;
    order_key: string | null;
    occurred_at: Date;
    payload: WebhookPayload;
  };

export interface DeliveryListFilter {
  /** "failed" means every final failure: failed and given_up (the dead letters). */
  statuses?: DeliveryStatus[];
  eventId?: string;
  limit: number;
  after?: Keyset;
}

export interface RedeliveryFilter {
  /** The status of each event's latest attempt. */
  statuses: DeliveryStatus[];
  since?: Date;
  until?: Date;
  eventType?: string;
  limit: number;
}

/** Port: deliveries (one row per attempt) and the events kept for them. */
export interface DeliveryStore {
  /**
   * Fans a batch of events out: for each, a pending first attempt for every matching
   * subscription. Safe to run twice for one event (buses deliver at least once). One outcome per
   * event, in order (the attempts created, or why that event failed); a rejection: none was fanned out.
   */
  fanOut(events: readonly DispatchableEvent[]): Promise<Array<PromiseSettledResult<number>>>;
  /** The event as the outbox stored it, for one the bus carried only as a reference. */
  storedEvent(eventId: string): Promise<TmeEvent | undefined>;
  /**
   * Claims due attempts for one worker: at most `perEndpoint` in flight per subscription across
   * all processes, and a task's events in order.
   */
  claimDue(options: {
    workerId: string;
    limit: number;
    perEndpoint: number;
    claimSeconds: number;
  }): Promise<ClaimedDelivery[]>;
  /** When the next pending attempt falls due, if any is waiting. */
  nextDueAt(): Promise<Date | undefined>;
  /**
   * Records an attempt and what follows: the next pending attempt when retrying, and the
   * endpoint's health (disabled after `disableAfterMs` of failures, or at once on 410).
   * recorded false: the claim was lost, and its new holder records the attempt.
   */
  record(
    claimed: ClaimedDelivery,
    workerId: string,
    result: AttemptResult,
    outcome: AttemptOutcome,
    options: { disableAfterMs: number },
  ): Promise<{ recorded: boolean; disabled?: "gone" | "failing" }>;
  /** A test ping stored and claimed by `workerId` at once, returned ready to send. */
  claimTestPing(
    namespace: string,
    subscriptionId: string,
    event: DispatchableEvent,
    workerId: string,
  ): Promise<ClaimedDelivery>;
  get(namespace: string, id: string): Promise<Delivery | undefined>;
  list(subscriptionId: string, filter: DeliveryListFilter): Promise<KeysetPage<Delivery>>;
  /** Events whose latest attempt matches the filter, oldest first, for bulk redelivery. */
  eventsToRedeliver(subscriptionId: string, filter: RedeliveryFilter): Promise<string[]>;
  /**
   * A new pending attempt per event, numbered after its last, with a fresh retry window; events
   * that already have a pending attempt are skipped.
   */
  redeliver(namespace: string, subscriptionId: string, eventIds: string[]): Promise<Delivery[]>;
  /** The W3C trace context a task was created under, to continue its trace (null: none). */
  traceContextOf(taskId: string): Promise<string | null>;
}
