import { encodePayload, type WebhookFormat, type WebhookPayload } from "./payload.js";
import { nextRetry, parseRetryAfter, type RetryPolicy } from "./retry-policy.js";
import { signatureHeaders } from "./signing.js";
import type { AuthType } from "./subscription.js";

/** What one HTTP attempt produced, as the sender reports it. */
export interface AttemptResult {
  /** HTTP status, when a response arrived. */
  status?: number;
  retryAfter?: string;
  /** The first bytes of the response body (at most the configured cap were read). */
  snippet: string;
  latencyMs: number;
  /** Why no usable response came: timeout, connection refused, refused address... */
  error?: string;
  /** The address guard refused to connect: retrying will not help. */
  refused?: boolean;
}

export type AttemptStatus = "succeeded" | "retrying" | "failed" | "given_up";

export interface AttemptOutcome {
  status: AttemptStatus;
  /** For retrying: when the next attempt is due. */
  nextAttemptAt?: Date;
  error?: string;
  /** The endpoint asked to be forgotten (410 Gone): disable the subscription. */
  disable?: "gone";
}

/**
 * Judges one attempt: a 2xx is success; 410 ends the delivery and disables the endpoint; a
 * refused address ends it (retrying would refuse again); anything else is retried on the
 * schedule (429 and 503 wait at least their Retry-After) until the window is spent.
 */
export function judgeAttempt(
  result: AttemptResult,
  context: {
    policy: RetryPolicy;
    now: Date;
    chainAttempt: number;
    chainStartedAt: Date;
    /** Test pings are tried once. */
    retries: boolean;
    random?: () => number;
  },
): AttemptOutcome {
  const { status } = result;
  // A 2xx whose body did not arrive within the deadline is not a success: the attempt timed out.
  if (status !== undefined && status >= 200 && status < 300 && !result.error) return { status: "succeeded" };
  const error = result.error ?? `endpoint answered ${status}`;
  if (status === 410)
    return { status: "failed", error: "endpoint answered 410 Gone: subscription disabled", disable: "gone" };
  if (result.refused) return { status: "failed", error };
  if (!context.retries) return { status: "failed", error };
  const retryAfterMs =
    status === 429 || status === 503 ? parseRetryAfter(result.retryAfter, context.now) : undefined;
  const decision = nextRetry(context.policy, {
    failedAttempts: context.chainAttempt,
    firstAttemptAt: context.chainStartedAt,
    now: context.now,
    retryAfterMs,
    random: context.random,
  });
  if (!decision.retry) return { status: "given_up", error: `${error}; ${decision.reason}` };
  return { status: "retrying", nextAttemptAt: decision.at, error };
}

/** Credentials of a subscription, opened from storage for one attempt. */
export interface EndpointAuth {
  type: AuthType;
  token?: string;
  username?: string;
  password?: string;
  /** hmac: the current secret first, then the previous one while its grace period lasts. */
  signingSecrets?: string[];
}

/** The exact request for one attempt: body in the subscription's format, auth and signature headers. */
export function buildWebhookRequest(
  payload: WebhookPayload,
  format: WebhookFormat,
  auth: EndpointAuth,
  now: Date,
): { body: string; headers: Record<string, string> } {
  const { body, contentType } = encodePayload(payload, format);
  const headers: Record<string, string> = {
    "content-type": contentType,
    "user-agent": "TME-Webhooks/1",
    ...signatureHeaders({
      messageId: payload.id,
      timestamp: now,
      body,
      secrets: auth.type === "hmac" ? (auth.signingSecrets ?? []) : [],
    }),
  };
  if (auth.type === "bearer") headers.authorization = `Bearer ${auth.token}`;
  if (auth.type === "basic") {
    headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`, "utf8").toString("base64")}`;
  }
  return { body, headers };
}
