import * as z from "zod";
import { callableUrl } from "../../core/net/address-policy.js";
import { DELIVERY_STATUSES, type Delivery } from "../../core/webhooks/delivery-store.js";
import { AUTH_TYPES, EVENT_PATTERNS } from "../../core/webhooks/subscription.js";
import type { Subscription } from "../../core/webhooks/subscription-store.js";
import { PageQueryFields } from "../cursor.js";

/** The request and response shapes of the subscription and delivery routes, and their views. */

const CallbackUrl = z
  .string()
  .min(1)
  .max(2048)
  .refine((value) => callableUrl(value).ok, { message: "must be an absolute http:// or https:// URL" })
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

export const CreateSubscription = z
  .object({
    event_types: EventTypes,
    callback_url: CallbackUrl,
    format: z.enum(["json", "xml"]).optional().describe("Default: event_notification_format"),
    auth: AuthInput.optional(),
    filter: Filter.optional(),
    enabled: z.boolean().optional(),
  })
  .strict();

export const UpdateSubscription = z
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

export const SubscriptionView = z.object({
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

export const DeliveryView = z.object({
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

export const Page = PageQueryFields;
export const SubscriptionParams = z.object({ subscription_id: z.string().min(1).max(100) }).strict();

export const StatusList = z
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

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function subscriptionView(row: Subscription, signingSecret?: string) {
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

export function deliveryView(row: Delivery) {
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
