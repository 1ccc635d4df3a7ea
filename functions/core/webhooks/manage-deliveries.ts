import type { Logger } from "../../logging/logger.js";
import { Conflict, NotFound } from "../errors.js";
import { newId } from "../ids.js";
import type { KeysetPage } from "../paging.js";
import { type DeliveryServices, deliveryWorkerId, performAttempt } from "./deliver-due.js";
import type { Delivery, DeliveryListFilter, DeliveryStatus, DispatchableEvent } from "./delivery-store.js";
import { findSubscription } from "./manage-subscriptions.js";
import type { SubscriptionStore } from "./subscription-store.js";

type Services = DeliveryServices & { subscriptions: SubscriptionStore };

/** Attempts of one subscription of the namespace, newest first (404 for another's). */
export async function listDeliveries(
  app: Pick<Services, "subscriptions" | "deliveries">,
  namespace: string,
  subscriptionId: string,
  filter: DeliveryListFilter,
): Promise<KeysetPage<Delivery>> {
  const subscription = await findSubscription(app, namespace, subscriptionId);
  return app.deliveries.list(subscription.id, filter);
}

/** Sends a ping now, signed and formatted like any delivery, tried once; returns the attempt. */
export async function sendTestPing(
  app: Services,
  namespace: string,
  subscriptionId: string,
): Promise<Delivery> {
  const subscription = await findSubscription(app, namespace, subscriptionId);
  const workerId = deliveryWorkerId();
  const now = app.now();
  const claimed = await app.deliveries.claimTestPing(
    namespace,
    subscription.id,
    {
      id: newId("evt"),
      type: "ping",
      occurred_at: now.toISOString(),
      namespace,
      data: { subscription_id: subscription.id, message: "test delivery from TME" },
    },
    workerId,
  );
  await performAttempt(app, claimed, workerId);
  return (await app.deliveries.get(namespace, claimed.id))!;
}

/** Delivers one attempt's event again: a new attempt with a fresh retry window (409 if one is pending). */
export async function redeliverOne(
  app: Pick<Services, "subscriptions" | "deliveries">,
  namespace: string,
  deliveryId: string,
): Promise<Delivery> {
  const delivery = await app.deliveries.get(namespace, deliveryId);
  if (!delivery) throw new NotFound("delivery", deliveryId);
  await findSubscription(app, namespace, delivery.subscription_id);
  const [created] = await app.deliveries.redeliver(namespace, delivery.subscription_id, [delivery.event_id]);
  if (!created) {
    throw new Conflict("delivery_pending", "this event already has a pending attempt for this subscription");
  }
  return created;
}

/**
 * Bulk redelivery: the events whose latest attempt has one of the statuses ("failed" meaning
 * every final failure, failed and given_up: the dead letters), each as a new attempt.
 */
export async function redeliverMatching(
  app: Pick<Services, "subscriptions" | "deliveries">,
  namespace: string,
  subscriptionId: string,
  filter: {
    statuses: Array<"failed" | "given_up" | "succeeded">;
    since?: Date;
    until?: Date;
    eventType?: string;
    limit: number;
  },
): Promise<Delivery[]> {
  const subscription = await findSubscription(app, namespace, subscriptionId);
  const statuses = filter.statuses.flatMap((s): DeliveryStatus[] =>
    s === "failed" ? ["failed", "given_up"] : [s],
  );
  const eventIds = await app.deliveries.eventsToRedeliver(subscription.id, {
    statuses: [...new Set(statuses)],
    since: filter.since,
    until: filter.until,
    eventType: filter.eventType,
    limit: filter.limit,
  });
  return app.deliveries.redeliver(namespace, subscription.id, eventIds);
}

/**
 * Fans out an event the bus delivered; one it carried only as a reference (too large for the
 * bus) is replaced by the stored event first. Returns the attempts created.
 */
export async function fanOutDispatched(
  app: { deliveries: Services["deliveries"]; logger: Logger },
  event: DispatchableEvent,
  truncated: boolean,
): Promise<number> {
  if (!truncated) return app.deliveries.fanOut(event);
  const stored = await app.deliveries.storedEvent(event.id);
  if (!stored) {
    app.logger.warn({ event_id: event.id }, "event arrived as a reference and is not stored; sent as is");
    return app.deliveries.fanOut(event);
  }
  return app.deliveries.fanOut({ ...event, data: stored.data });
}
