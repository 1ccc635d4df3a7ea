import * as z from "zod";
import {
  createSubscription,
  deleteSubscription,
  findSubscription,
  listSubscriptions,
  updateSubscription,
} from "../../core/webhooks/manage-subscriptions.js";
import { decodeKeysetCursor, nextCursorHeader } from "../cursor.js";
import { errorResponse, response } from "../openapi.js";
import { defineRoute } from "../route.js";
import {
  CreateSubscription,
  Page,
  SubscriptionParams,
  SubscriptionView,
  subscriptionView,
  UpdateSubscription,
} from "./webhook-schemas.js";

const tags = ["events"];

/** Subscriptions: POST, GET, PATCH and DELETE /events. */
export const subscriptionRoutes = [
  defineRoute({
    method: "POST",
    path: "/events",
    scope: "events:write",
    idempotent: true,
    secretFields: ["signing_secret"],
    auditAction: "subscription.create",
    body: CreateSubscription,
    docs: {
      summary: "Subscribe a callback URL to events",
      tags,
      description:
        "Deliveries are POSTed as JSON or XML, signed per Standard Webhooks when auth.type is hmac. " +
        "A callback URL that resolves to a private, loopback, link-local or metadata address is refused (422) " +
        "unless allow_private_callbacks is set.",
      responses: {
        201: response("Created; signing_secret is shown only here", SubscriptionView),
        422: errorResponse("Callback URL refused"),
      },
    },
    async handle(req, app) {
      const { subscription, signingSecret } = await createSubscription(app, req.namespace, req.body);
      return { status: 201, body: subscriptionView(subscription, signingSecret) };
    },
  }),

  defineRoute({
    method: "GET",
    path: "/events",
    scope: "events:write",
    query: z.object(Page).strict(),
    docs: {
      summary: "List subscriptions, newest first",
      tags,
      responses: {
        200: {
          description: "Subscriptions (X-Next-Cursor for the next page)",
          schema: z.array(SubscriptionView),
        },
      },
    },
    async handle(req, app) {
      const page = await listSubscriptions(app, req.namespace, {
        limit: req.query.limit,
        after: decodeKeysetCursor(req.query.cursor),
      });
      return {
        status: 200,
        body: page.rows.map((r) => subscriptionView(r)),
        headers: nextCursorHeader(page.next),
      };
    },
  }),

  defineRoute({
    method: "GET",
    path: "/events/{subscription_id}",
    scope: "events:write",
    params: SubscriptionParams,
    docs: {
      summary: "A subscription",
      tags,
      responses: { 200: response("The subscription", SubscriptionView) },
    },
    async handle(req, app) {
      const subscription = await findSubscription(app, req.namespace, req.params.subscription_id);
      return { status: 200, body: subscriptionView(subscription) };
    },
  }),

  defineRoute({
    method: "PATCH",
    path: "/events/{subscription_id}",
    scope: "events:write",
    auditAction: "subscription.update",
    params: SubscriptionParams,
    body: UpdateSubscription,
    docs: {
      summary: "Change a subscription, re-enable it, or rotate its signing secret",
      tags,
      responses: {
        200: response(
          "Updated; signing_secret present after a rotation or a switch to hmac",
          SubscriptionView,
        ),
        422: errorResponse("Callback URL refused, or rotate_secret on a non-hmac subscription"),
      },
    },
    async handle(req, app) {
      const { subscription, signingSecret } = await updateSubscription(
        app,
        req.namespace,
        req.params.subscription_id,
        req.body,
      );
      return { status: 200, body: subscriptionView(subscription, signingSecret) };
    },
  }),

  defineRoute({
    method: "DELETE",
    path: "/events/{subscription_id}",
    scope: "events:write",
    auditAction: "subscription.delete",
    params: SubscriptionParams,
    docs: {
      summary: "Delete a subscription (its pending attempts end)",
      tags,
      responses: { 204: response("Deleted") },
    },
    async handle(req, app) {
      await deleteSubscription(app, req.namespace, req.params.subscription_id);
      return { status: 204 };
    },
  }),
];
