import http from "node:http";
import https from "node:https";
import ipaddr from "ipaddr.js";
import { isForbiddenAddress } from "../../core/net/address-policy.js";
import type { AttemptResult } from "../../core/webhooks/deliver.js";
import type { SendOptions } from "../../core/webhooks/webhook-sender.js";
import { ForbiddenAddressError, guardedLookup } from "../net/guarded-lookup.js";

export type { SendOptions };

/**
 * Makes one webhook attempt. Never follows redirects (a 3xx is just a failed attempt), reads at
 * most maxResponseBytes of the response, and ends the whole exchange at the deadline. Never throws:
 * every failure becomes an AttemptResult with an error.
 */
export function sendWebhook(options: SendOptions): Promise<AttemptResult> {
  const started = Date.now();
  const snippetBytes = options.snippetBytes ?? 1024;
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    // Declared before anything can finish: a URL refused before the request exists ends here too.
    let deadline: NodeJS.Timeout | undefined;
    const finish = (result: Omit<AttemptResult, "latencyMs">) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve({ ...result, latencyMs: Date.now() - started });
    };

    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      finish({ snippet: "", error: "invalid callback URL", refused: true });
      return;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      finish({ snippet: "", error: `scheme ${url.protocol} is not allowed`, refused: true });
      return;
    }
    // IP literals never reach the resolver, so they are checked here (the URL parser has turned
    // decimal, hex and octal forms into dotted ones).
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    if (!options.allowPrivate && ipaddr.isValid(host) && isForbiddenAddress(host)) {
      finish({ snippet: "", error: `${host} is a forbidden (private or reserved) address`, refused: true });
      return;
    }

    const transport = url.protocol === "https:" ? https : http;
    const request = transport.request(url, {
      method: "POST",
      headers: { ...options.headers, "content-length": String(Buffer.byteLength(options.body)) },
      lookup: guardedLookup(options.allowPrivate),
      agent: false,
    });
    deadline = setTimeout(() => {
      request.destroy(new Error(`timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);

    request.on("error", (error: NodeJS.ErrnoException) => {
      const refused = error instanceof ForbiddenAddressError;
      finish({ snippet: "", error: error.message || error.code || "request failed", refused });
    });
    request.on("response", (response) => {
      const chunks: Buffer[] = [];
      let read = 0;
      let capped = false;
      const done = (extra: Partial<AttemptResult> = {}) => {
        const body = Buffer.concat(chunks);
        finish({
          status: response.statusCode,
          retryAfter: response.headers["retry-after"],
          snippet: body.subarray(0, snippetBytes).toString("utf8"),
          ...extra,
        });
        request.destroy();
      };
      response.on("data", (chunk: Buffer) => {
        if (capped) return;
        const room = options.maxResponseBytes - read;
        if (chunk.length >= room) {
          chunks.push(chunk.subarray(0, room));
          read += room;
          capped = true;
          // Enough: the rest of a huge body is never read; closing the socket stops the sender.
          done();
          return;
        }
        chunks.push(chunk);
        read += chunk.length;
      });
      response.on("end", () => done());
      response.on("error", (error) => done({ error: error.message }));
      // A deadline hit mid-body: the status arrived but the body did not finish in time.
      response.on("aborted", () =>
        done({ error: `timed out after ${options.timeoutMs} ms while reading the response` }),
      );
      request.on("close", () => {
        if (!settled) done({ error: `response ended early or timed out after ${options.timeoutMs} ms` });
      });
    });
    request.end(options.body);
  });
}
