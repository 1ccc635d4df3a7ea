import * as z from "zod";
import {
  listDeliveries,
  redeliverMatching,
  redeliverOne,
  sendTestPing,
} from "../../core/webhooks/manage-deliveries.js";
import { decodeKeysetCursor, nextCursorHeader } from "../cursor.js";
import { errorResponse, response } from "../openapi.js";
import { defineRoute } from "../route.js";
import { DeliveryView, deliveryView, Page, StatusList, SubscriptionParams } from "./webhook-schemas.js";

const tags = ["events"];

/** Deliveries: a subscription's attempts, its test ping, and redelivery (one, or the dead letters). */
export const deliveryRoutes = [
  defineRoute({
    method: "GET",
    path: "/events/{subscription_id}/deliveries",
    scope: "events:write",
    params: SubscriptionParams,
    query: z
      .object({ ...Page, status: StatusList.optional(), event_id: z.string().max(100).optional() })
      .strict(),
    docs: {
      summary: "Delivery attempts of a subscription, newest first (one row per attempt)",
      tags,
      responses: { 200: response("Attempts", z.array(DeliveryView)) },
    },
    async handle(req, app) {
      const page = await listDeliveries(app, req.namespace, req.params.subscription_id, {
        statuses: req.query.status,
        eventId: req.query.event_id,
        limit: req.query.limit,
        after: decodeKeysetCursor(req.query.cursor),
      });
      return { status: 200, body: page.rows.map(deliveryView), headers: nextCursorHeader(page.next) };
    },
  }),

  defineRoute({
    method: "POST",
    path: "/events/{subscription_id}/test",
    scope: "events:write",
    auditAction: "subscription.test",
    params: SubscriptionParams,
    docs: {
      summary: "Send a ping event now and report the attempt",
      tags,
      description: "The ping is signed and formatted like any delivery; it is tried once, not retried.",
      responses: { 200: response("The attempt", DeliveryView) },
    },
    async handle(req, app) {
      const attempt = await sendTestPing(app, req.namespace, req.params.subscription_id);
      return { status: 200, body: deliveryView(attempt) };
    },
  }),

  defineRoute({
    method: "POST",
    path: "/deliveries/{delivery_id}/redeliver",
    scope: "events:write",
    auditAction: "delivery.redeliver",
    params: z.object({ delivery_id: z.string().min(1).max(100) }).strict(),
    docs: {
      summary: "Deliver this attempt's event again (a new attempt with a fresh retry window)",
      tags,
      responses: {
        202: response("The new pending attempt", DeliveryView),
        409: errorResponse("The event already has a pending attempt"),
      },
    },
    async handle(req, app) {
      const attempt = await redeliverOne(app, req.namespace, req.params.delivery_id);
      return { status: 202, body: deliveryView(attempt) };
    },
  }),

  defineRoute({
    method: "POST",
    path: "/events/{subscription_id}/redeliver",
    scope: "events:write",
    auditAction: "subscription.redeliver",
    params: SubscriptionParams,
    body: z
      .object({
        status: z
          .array(z.enum(["failed", "given_up", "succeeded"]))
          .min(1)
          .default(["failed", "given_up"]),
        since: z.iso.datetime({ offset: true }).optional(),
        until: z.iso.datetime({ offset: true }).optional(),
        event_type: z.string().max(100).optional(),
        limit: z.number().int().min(1).max(10_000).default(1000),
      })
      .strict(),
    docs: {
      summary:
        "Redeliver in bulk: events whose latest attempt has one of the statuses (default: the dead letters)",
      tags,
      responses: {
        202: {
          description: "How many events were queued again",
          schema: z.object({ redelivered: z.number(), delivery_ids: z.array(z.string()) }),
        },
      },
    },
    async handle(req, app) {
      const created = await redeliverMatching(app, req.namespace, req.params.subscription_id, {
        statuses: req.body.status,
        since: req.body.since ? new Date(req.body.since) : undefined,
        until: req.body.until ? new Date(req.body.until) : undefined,
        eventType: req.body.event_type,
        limit: req.body.limit,
      });
      return { status: 202, body: { redelivered: created.length, delivery_ids: created.map((c) => c.id) } };
    },
  }),
];
