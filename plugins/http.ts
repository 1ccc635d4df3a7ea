import * as z from "zod";
import { guardedRequest } from "../functions/adapters/http/guarded-client.js";
import { assertPublicUrl } from "../functions/core/net/address-policy.js";
import { definePlugin, PermanentTaskError } from "../functions/core/plugins/plugin.js";

/** Bytes of the response body kept in the task's result. */
const MAX_BODY_BYTES = 65_536;

const paramsSchema = z
  .object({
    url: z.string().url().max(8192),
    method: z.enum(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]).default("GET"),
    headers: z.record(z.string().min(1).max(256), z.string().max(8192)).default({}),
    /** A string is sent as is; anything else as JSON (with content-type application/json). */
    body: z.unknown().optional(),
    /** Per request; the task's own timeout_seconds still bounds the whole attempt. */
    timeout_seconds: z.number().positive().max(3600).default(30),
  })
  .strict();

type Params = z.infer<typeof paramsSchema>;

interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
  truncated: boolean;
}

async function send(params: Params, allowPrivate: boolean, signal: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = { "user-agent": "TME-http-plugin", ...params.headers };
  let payload: Buffer | undefined;
  if (params.body !== undefined) {
    payload = Buffer.from(typeof params.body === "string" ? params.body : JSON.stringify(params.body));
    if (
      typeof params.body !== "string" &&
      !Object.keys(headers).some((h) => h.toLowerCase() === "content-type")
    ) {
      headers["content-type"] = "application/json";
    }
  }
  const response = await guardedRequest(new URL(params.url), {
    method: params.method,
    headers,
    body: payload,
    allowPrivate,
    maxResponseBytes: MAX_BODY_BYTES,
    idleTimeoutMs: params.timeout_seconds * 1000,
    idleTimeoutMessage: `no response within ${params.timeout_seconds} s`,
    signal,
  });
  // A body cut off midway is a failed call (retried), as a connection lost before any answer.
  if (response.error !== undefined) throw new Error(response.error);
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(response.headers)) {
    if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  return {
    status: response.status,
    headers: flat,
    body: response.body.toString("utf8"),
    truncated: response.truncated,
  };
}

/**
 * Calls a URL. Private, loopback, link-local and metadata addresses are refused (checked
 * before the request and again at connect time) unless allow_private_callbacks is set.
 * A 2xx succeeds; 408, 429 and 5xx are retried; any other status fails without retry.
 */
export const handler = definePlugin({
  name: "http",
  description: "Calls params.url (method, headers, body, timeout_seconds); the response is the result.",
  paramsSchema,
  async run(ctx) {
    const allowPrivate = ctx.config.allow_private_callbacks;
    try {
      await assertPublicUrl(ctx.params.url, { allowPrivate, field: "params.url" });
    } catch (error) {
      throw new PermanentTaskError((error as Error).message);
    }
    let response: Response;
    try {
      response = await send(ctx.params, allowPrivate, ctx.signal);
    } catch (error) {
      if ((error as { code?: string }).code === "ERR_TME_FORBIDDEN_ADDRESS") {
        throw new PermanentTaskError((error as Error).message);
      }
      throw error;
    }
    const result = {
      status: response.status,
      headers: response.headers,
      body: response.body,
      body_truncated: response.truncated,
    };
    if (response.status >= 200 && response.status < 300) return { result };
    const message = `${ctx.params.method} ${ctx.params.url} answered ${response.status}: ${response.body.slice(0, 500)}`;
    if (response.status === 408 || response.status === 429 || response.status >= 500)
      throw new Error(message);
    throw new PermanentTaskError(message);
  },
});
