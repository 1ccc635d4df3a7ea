import * as z from "zod";
import {
  DELIVERY_STATUSES,
  type DeliveryRow,
  eventsToRedeliver,
  getDelivery,
  insertTestDelivery,
  listDeliveries,
  loadClaimed,
  redeliver,
} from "../../adapters/postgres/delivery-repository.js";
import {
  deleteSubscription,
  getSubscription,
  insertSubscription,
  listSubscriptions,
  type SubscriptionChanges,
  type SubscriptionRow,
  updateSubscription,
} from "../../adapters/postgres/subscription-repository.js";
import {
  deliveryWorkerId,
  performAttempt,
  type SealedAuth,
} from "../../adapters/webhooks/delivery-runner.js";
import type { AppContext } from "../../context.js";
import { Conflict, NotFound, Unprocessable, ValidationFailed } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import { assertPublicUrl } from "../../core/net/address-policy.js";
import { generateSigningSecret } from "../../core/webhooks/signing.js";
import { AUTH_TYPES, EVENT_PATTERNS } from "../../core/webhooks/subscription.js";
import { defineRoute } from "../route.js";
import { decodeKeysetCursor, nextCursorHeader } from "./keyset-cursor.js";

// ---- schemas -------------------------------------------------------------------------------

const CallbackUrl = z
  .string()
  .min(1)
  .max(2048)
  .refine(
    (value) => {
      try {
        return ["http:", "https:"].includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: "must be an absolute http:// or https:// URL" },
  )
  .describe(
    "Where deliveries are POSTed; http(s) only, and not a private address unless allow_private_callbacks",
  );

const AuthInput = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("none") }).strict(),
    z.object({ type: z.literal("bearer"), token: z.string().min(1).max(4096) }).strict(),
    z
      .object({
        type: z.literal("basic"),
        username: z
          .string()
          .min(1)
          .max(256)
          .regex(/^[^:]*$/, "must not contain ':'"),
        password: z.string().max(1024),
      })
      .strict(),
    z.object({ type: z.literal("hmac") }).strict(),
  ])
  .describe("How TME authenticates to the endpoint; hmac: TME generates the secret and returns it once");

const Filter = z
  .object({
    name: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe("Glob on the task (or schedule) name, e.g. backup_*"),
    labels: z
      .record(z.string().min(1).max(100), z.string().max(500))
      .optional()
      .describe("Labels that must all match"),
  })
  .strict();

const EventTypes = z
  .array(z.enum(EVENT_PATTERNS))
  .min(1)
  .max(50)
  .describe("Exact types or wildcards: task.*, schedule.*, alert.*, *");

const CreateSubscription = z
  .object({
    event_types: EventTypes,
    callback_url: CallbackUrl,
    format: z.enum(["json", "xml"]).optional().describe("Default: event_notification_format"),
    auth: AuthInput.optional(),
    filter: Filter.optional(),
    enabled: z.boolean().optional(),
  })
  .strict();

const UpdateSubscription = z
  .object({
    event_types: EventTypes.optional(),
    callback_url: CallbackUrl.optional(),
    format: z.enum(["json", "xml"]).optional(),
    auth: AuthInput.optional(),
    filter: Filter.optional(),
    enabled: z.boolean().optional().describe("true re-enables a subscription disabled by TME or by you"),
    rotate_secret: z
      .literal(true)
      .optional()
      .describe("hmac only: a new secret, returned once; the old one keeps signing during the grace period"),
  })
  .strict();

const SubscriptionView = z.object({
  id: z.string(),
  subscription_id: z.string(),
  namespace: z.string(),
  event_types: z.array(z.string()),
  callback_url: z.string(),
  format: z.enum(["json", "xml"]),
  auth: z.object({ type: z.enum(AUTH_TYPES), username: z.string().optional() }),
  filter: Filter,
  enabled: z.boolean(),
  disabled_reason: z.string().nullable(),
  failing_since: z.string().nullable(),
  previous_secret_expires_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  signing_secret: z.string().optional().describe("Only in the response that created or rotated it"),
});

const DeliveryView = z.object({
  id: z.string(),
  delivery_id: z.string(),
  subscription_id: z.string(),
  event_id: z.string(),
  event_type: z.string(),
  attempt: z.number(),
  trigger: z.enum(["event", "retry", "redeliver", "test"]),
  status: z.enum(DELIVERY_STATUSES),
  response_status: z.number().nullable(),
  latency_ms: z.number().nullable(),
  response_snippet: z.string().nullable(),
  error: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
});

const Page = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(500).optional(),
};
const SubscriptionParams = z.object({ subscription_id: z.string().min(1).max(100) }).strict();
const ErrorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

const StatusList = z
  .string()
  .transform((value, ctx) => {
    const statuses = value.split(",").map((s) => s.trim());
    const unknown = statuses.filter((s) => !(DELIVERY_STATUSES as readonly string[]).includes(s));
    if (unknown.length > 0) {
      ctx.addIssue({
        code: "custom",
        message: `unknown status ${unknown.join(", ")}; allowed: ${DELIVERY_STATUSES.join(", ")}`,
      });
      return z.NEVER;
    }
    return statuses as (typeof DELIVERY_STATUSES)[number][];
  })
  .describe("Comma list; failed also matches given_up (every final failure)");

// ---- views ---------------------------------------------------------------------------------

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function subscriptionView(row: SubscriptionRow, signingSecret?: string) {
  return {
    id: row.id,
    subscription_id: row.id,
    namespace: row.namespace,
    event_types: row.event_types,
    callback_url: row.callback_url,
    format: row.format,
    auth:
      row.auth_type === "basic"
        ? { type: row.auth_type, username: row.auth_username ?? "" }
        : { type: row.auth_type },
    filter: row.filter,
    enabled: row.enabled,
    disabled_reason: row.enabled ? null : row.disabled_reason,
    failing_since: iso(row.failing_since),
    previous_secret_expires_at: iso(row.previous_secret_expires_at),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    ...(signingSecret ? { signing_secret: signingSecret } : {}),
  };
}

export function deliveryView(row: DeliveryRow) {
  return {
    id: row.id,
    delivery_id: row.id,
    subscription_id: row.subscription_id,
    event_id: row.event_id,
    event_type: row.event_type,
    attempt: row.attempt,
    trigger: row.trigger,
    status: row.status,
    response_status: row.response_status,
    latency_ms: row.latency_ms,
    response_snippet: row.response_snippet,
    error: row.error,
    next_attempt_at: iso(row.next_attempt_at),
    created_at: row.created_at.toISOString(),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
  };
}

// ---- helpers -------------------------------------------------------------------------------

async function checkCallbackUrl(app: AppContext, url: string): Promise<void> {
  await assertPublicUrl(url, { allowPrivate: app.config.app.allow_private_callbacks, field: "callback_url" });
}

/** Seals an auth input; for hmac a new secret is generated and returned (shown once). */
async function sealAuth(
  app: AppContext,
  auth: z.infer<typeof AuthInput>,
): Promise<{
  auth_type: SubscriptionRow["auth_type"];
  auth_username: string | null;
  auth_secret: string | null;
  signingSecret?: string;
}> {
  const seal = (value: SealedAuth) => app.secrets.seal(JSON.stringify(value));
  switch (auth.type) {
    case "bearer":
      return { auth_type: "bearer", auth_username: null, auth_secret: await seal({ token: auth.token }) };
    case "basic":
      return {
        auth_type: "basic",
        auth_username: auth.username,
        auth_secret: await seal({ password: auth.password }),
      };
    case "hmac": {
      const signingSecret = generateSigningSecret();
      return {
        auth_type: "hmac",
        auth_username: null,
        auth_secret: await seal({ secret: signingSecret }),
        signingSecret,
      };
    }
    default:
      return { auth_type: "none", auth_username: null, auth_secret: null };
  }
}

async function findSubscription(app: AppContext, namespace: string, id: string): Promise<SubscriptionRow> {
  const row = await getSubscription(app.db, namespace, id);
  if (!row) throw new NotFound("subscription", id);
  return row;
}

// ---- routes --------------------------------------------------------------------------------

const tags = ["events"];

export const eventRoutes = [
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
        201: { description: "Created; signing_secret is shown only here", schema: SubscriptionView },
        422: { description: "Callback URL refused", schema: ErrorSchema },
      },
    },
    async handle(req, app) {
      const body = req.body;
      await checkCallbackUrl(app, body.callback_url);
      const sealed = await sealAuth(app, body.auth ?? { type: "none" });
      const row = await insertSubscription(app.db, {
        id: newId("sub"),
        namespace: req.namespace,
        event_types: [...new Set(body.event_types)],
        callback_url: body.callback_url,
        format: body.format ?? app.config.app.event_notification_format,
        auth_type: sealed.auth_type,
        auth_username: sealed.auth_username,
        auth_secret: sealed.auth_secret,
        filter: body.filter ?? {},
        enabled: body.enabled ?? true,
      });
      return { status: 201, body: subscriptionView(row, sealed.signingSecret) };
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
      const page = await listSubscriptions(app.db, req.namespace, {
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
      responses: { 200: { description: "The subscription", schema: SubscriptionView } },
    },
    async handle(req, app) {
      return {
        status: 200,
        body: subscriptionView(await findSubscription(app, req.namespace, req.params.subscription_id)),
      };
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
        200: {
          description: "Updated; signing_secret present after a rotation or a switch to hmac",
          schema: SubscriptionView,
        },
        422: {
          description: "Callback URL refused, or rotate_secret on a non-hmac subscription",
          schema: ErrorSchema,
        },
      },
    },
    async handle(req, app) {
      const id = req.params.subscription_id;
      const body = req.body;
      if (Object.keys(body).length === 0) {
        throw new ValidationFailed("nothing to change: send at least one field", [
          { path: "(body)", message: "empty" },
        ]);
      }
      if (body.callback_url !== undefined) await checkCallbackUrl(app, body.callback_url);
      return app.db.transaction(async (tx) => {
        const current = await getSubscription(tx, req.namespace, id, { forUpdate: true });
        if (!current) throw new NotFound("subscription", id);
        const changes: SubscriptionChanges = {
          event_types: body.event_types ? [...new Set(body.event_types)] : undefined,
          callback_url: body.callback_url,
          format: body.format,
          filter: body.filter,
        };
        let signingSecret: string | undefined;
        if (body.auth && body.rotate_secret) {
          throw new ValidationFailed("send either auth or rotate_secret, not both", [
            { path: "rotate_secret", message: "cannot be combined with auth" },
          ]);
        }
        if (body.auth) {
          const sealed = await sealAuth(app, body.auth);
          Object.assign(changes, {
            auth_type: sealed.auth_type,
            auth_username: sealed.auth_username,
            auth_secret: sealed.auth_secret,
          });
          signingSecret = sealed.signingSecret;
        }
        if (body.rotate_secret) {
          if (current.auth_type !== "hmac") {
            throw new Unprocessable("only hmac subscriptions have a signing secret to rotate", [
              { path: "rotate_secret", message: `auth.type is ${current.auth_type}` },
            ]);
          }
          signingSecret = generateSigningSecret();
          const graceMs = app.config.app.webhooks.secret_rotation_grace_hours * 3_600_000;
          changes.auth_secret = await app.secrets.seal(
            JSON.stringify({ secret: signingSecret } satisfies SealedAuth),
          );
          changes.previous_secret = current.auth_secret;
          changes.previous_secret_expires_at = new Date(app.now().getTime() + graceMs);
        }
        if (body.enabled === true && !current.enabled) {
          Object.assign(changes, {
            enabled: true,
            disabled_cause: null,
            disabled_reason: null,
            disabled_at: null,
            failing_since: null,
          });
        } else if (body.enabled === false && current.enabled) {
          Object.assign(changes, {
            enabled: false,
            disabled_cause: "manual",
            disabled_reason: "disabled by request",
            disabled_at: app.now(),
          });
        }
        // Undefined fields are left alone; nulls (clearing the disabled state) are written.
        const row = await updateSubscription(tx, req.namespace, id, changes);
        return { status: 200, body: subscriptionView(row!, signingSecret) };
      });
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
      responses: { 204: { description: "Deleted" } },
    },
    async handle(req, app) {
      const deleted = await app.db.transaction((tx) =>
        deleteSubscription(tx, req.namespace, req.params.subscription_id),
      );
      if (!deleted) throw new NotFound("subscription", req.params.subscription_id);
      return { status: 204 };
    },
  }),

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
      responses: { 200: { description: "Attempts", schema: z.array(DeliveryView) } },
    },
    async handle(req, app) {
      const sub = await findSubscription(app, req.namespace, req.params.subscription_id);
      const page = await listDeliveries(app.db, sub.id, {
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
      responses: { 200: { description: "The attempt", schema: DeliveryView } },
    },
    async handle(req, app) {
      const sub = await findSubscription(app, req.namespace, req.params.subscription_id);
      const workerId = deliveryWorkerId();
      const now = app.now();
      const deliveryId = await insertTestDelivery(
        app.db,
        req.namespace,
        sub.id,
        {
          id: newId("evt"),
          type: "ping",
          occurred_at: now.toISOString(),
          namespace: req.namespace,
          data: { subscription_id: sub.id, message: "test delivery from TME" },
        },
        workerId,
      );
      const claimed = await loadClaimed(app.db, deliveryId);
      await performAttempt(app, claimed!, workerId);
      return { status: 200, body: deliveryView((await getDelivery(app.db, req.namespace, deliveryId))!) };
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
        202: { description: "The new pending attempt", schema: DeliveryView },
        409: { description: "The event already has a pending attempt", schema: ErrorSchema },
      },
    },
    async handle(req, app) {
      const delivery = await getDelivery(app.db, req.namespace, req.params.delivery_id);
      if (!delivery) throw new NotFound("delivery", req.params.delivery_id);
      await findSubscription(app, req.namespace, delivery.subscription_id);
      const [created] = await redeliver(app.db, req.namespace, delivery.subscription_id, [delivery.event_id]);
      if (!created) {
        throw new Conflict(
          "delivery_pending",
          "this event already has a pending attempt for this subscription",
        );
      }
      return { status: 202, body: deliveryView(created) };
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
      const sub = await findSubscription(app, req.namespace, req.params.subscription_id);
      const statuses = req.body.status.flatMap((s) =>
        s === "failed" ? (["failed", "given_up"] as const) : [s],
      );
      const eventIds = await eventsToRedeliver(app.db, sub.id, {
        statuses: [...new Set(statuses)],
        since: req.body.since ? new Date(req.body.since) : undefined,
        until: req.body.until ? new Date(req.body.until) : undefined,
        eventType: req.body.event_type,
        limit: req.body.limit,
      });
      const created = await redeliver(app.db, req.namespace, sub.id, eventIds);
      return { status: 202, body: { redelivered: created.length, delivery_ids: created.map((c) => c.id) } };
    },
  }),
];
