import { callableUrl, isForbiddenLiteral } from "../../core/net/address-policy.js";
import type { AttemptResult } from "../../core/webhooks/deliver.js";
import type { SendOptions } from "../../core/webhooks/webhook-sender.js";
import { ForbiddenAddressError } from "../net/guarded-lookup.js";
import { guardedRequest } from "./guarded-client.js";

export type { SendOptions };

/**
 * Makes one webhook attempt through the guarded client: never follows redirects (a 3xx is just
 * a failed attempt), reads at most maxResponseBytes of the response, and ends the whole exchange
 * at the deadline. Never throws: every failure becomes an AttemptResult with an error.
 */
export async function sendWebhook(options: SendOptions): Promise<AttemptResult> {
  const started = Date.now();
  const snippetBytes = options.snippetBytes ?? 1024;
  const finish = (result: Omit<AttemptResult, "latencyMs">): AttemptResult => ({
    ...result,
    latencyMs: Date.now() - started,
  });
  const target = callableUrl(options.url);
  if (!target.ok) {
    return finish({
      snippet: "",
      error: target.refused === "invalid" ? "invalid callback URL" : `scheme ${target.scheme} is not allowed`,
      refused: true,
    });
  }
  if (!options.allowPrivate && isForbiddenLiteral(target.host)) {
    return finish({
      snippet: "",
      error: `${target.host} is a forbidden (private or reserved) address`,
      refused: true,
    });
  }
  try {
    const response = await guardedRequest(target.url, {
      method: "POST",
      headers: options.headers,
      body: options.body,
      allowPrivate: options.allowPrivate,
      maxResponseBytes: options.maxResponseBytes,
      deadlineMs: options.timeoutMs,
      freshConnection: true,
    });
    return finish({
      status: response.status,
      retryAfter: response.headers["retry-after"],
      snippet: response.body.subarray(0, snippetBytes).toString("utf8"),
      ...(response.error !== undefined ? { error: response.error } : {}),
    });
  } catch (error) {
    const failure = error as NodeJS.ErrnoException;
    return finish({
      snippet: "",
      error: failure.message || failure.code || "request failed",
      refused: error instanceof ForbiddenAddressError,
    });
  }
}
