import http, { type IncomingHttpHeaders } from "node:http";
import https from "node:https";
import { guardedLookup } from "../net/guarded-lookup.js";

export interface GuardedRequestOptions {
  method: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** allow_private_callbacks: connect to private and loopback addresses too. */
  allowPrivate: boolean;
  /** Bytes of response body kept at most; once more arrive the connection is closed. */
  maxResponseBytes: number;
  /** The whole exchange (connect, send, read the response, slow drips included). */
  deadlineMs?: number;
  /** How long the socket may sit idle (no byte either way) before the request fails. */
  idleTimeoutMs?: number;
  /** The idle timeout's error message (default: "no response within N ms"). */
  idleTimeoutMessage?: string;
  signal?: AbortSignal;
  /** A fresh connection per request (no keep-alive pool shared between endpoints). */
  freshConnection?: boolean;
}

export interface GuardedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** At most maxResponseBytes of the body. */
  body: Buffer;
  /** The body was longer than maxResponseBytes; the rest was never read. */
  truncated: boolean;
  /** The body did not arrive whole (cut off, deadline): why. The status and headers did. */
  error?: string;
}

/**
 * The one HTTP client of calls TME makes on a caller's behalf (webhooks, the http plugin):
 * every address the host resolves to is checked when the socket connects (guardedLookup, so a
 * DNS answer that changes after the URL check cannot smuggle a request inside), redirects are
 * never followed (a 3xx is just the answer), and at most maxResponseBytes of a response are
 * read. Rejects when no response arrived (the refusal is a ForbiddenAddressError); resolves
 * once the body ended, was capped, or was cut off (then `error` says why).
 *
 * The URL's scheme and IP literals are the caller's to check first (core/net/address-policy.ts):
 * a literal never reaches the resolver.
 */
export function guardedRequest(url: URL, options: GuardedRequestOptions): Promise<GuardedResponse> {
  return new Promise<GuardedResponse>((resolve, reject) => {
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      fn();
    };
    const headers = { ...options.headers };
    if (options.body !== undefined) headers["content-length"] = String(Buffer.byteLength(options.body));
    const transport = url.protocol === "https:" ? https : http;
    const request = transport.request(url, {
      method: options.method,
      headers,
      lookup: guardedLookup(options.allowPrivate),
      ...(options.freshConnection ? { agent: false } : {}),
      ...(options.idleTimeoutMs !== undefined ? { timeout: options.idleTimeoutMs } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (options.deadlineMs !== undefined) {
      deadline = setTimeout(() => {
        request.destroy(new Error(`timed out after ${options.deadlineMs} ms`));
      }, options.deadlineMs);
    }
    request.on("timeout", () =>
      request.destroy(
        new Error(options.idleTimeoutMessage ?? `no response within ${options.idleTimeoutMs} ms`),
      ),
    );
    request.on("error", (error) => settle(() => reject(error)));
    request.on("response", (response) => {
      const chunks: Buffer[] = [];
      let read = 0;
      let truncated = false;
      const done = (error?: string) => {
        settle(() =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
            truncated,
            ...(error !== undefined ? { error } : {}),
          }),
        );
        request.destroy();
      };
      const within = options.deadlineMs !== undefined ? ` after ${options.deadlineMs} ms` : "";
      response.on("data", (chunk: Buffer) => {
        if (settled) return;
        const room = options.maxResponseBytes - read;
        if (chunk.length > room) {
          chunks.push(chunk.subarray(0, room));
          read += room;
          truncated = true;
          // Enough: the rest of a huge body is never read; closing the socket stops the sender.
          done();
          return;
        }
        chunks.push(chunk);
        read += chunk.length;
      });
      response.on("end", () => done());
      response.on("error", (error) => done(error.message));
      // The deadline (or an abort) hit mid-body: the status arrived but the body did not finish.
      response.on("aborted", () => done(`timed out${within} while reading the response`));
      request.on("close", () => {
        if (!settled) done(`response ended early or timed out${within}`);
      });
    });
    request.end(options.body);
  });
}
