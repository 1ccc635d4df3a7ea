import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";

/** A new Standard Webhooks secret: "whsec_" + base64 of 32 random bytes. */
export function generateSigningSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/**
 * The Standard Webhooks headers for one delivery. During a rotation's grace period the
 * signature header carries both signatures, space separated, so a receiver still verifying
 * with the old secret keeps accepting while it switches.
 */
export function signatureHeaders(input: {
  messageId: string;
  timestamp: Date;
  body: string;
  secrets: string[];
}): Record<string, string> {
  const headers: Record<string, string> = {
    "webhook-id": input.messageId,
    "webhook-timestamp": String(Math.floor(input.timestamp.getTime() / 1000)),
  };
  if (input.secrets.length > 0) {
    headers["webhook-signature"] = input.secrets
      .map((secret) => new Webhook(secret).sign(input.messageId, input.timestamp, input.body))
      .join(" ");
  }
  return headers;
}
