import type { AttemptResult } from "./deliver.js";

export interface SendOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** The whole attempt: connect, send, and read the response, slow drips included. */
  timeoutMs: number;
  /** Bytes of response body read at most; the connection is closed after. */
  maxResponseBytes: number;
  allowPrivate: boolean;
  /** Bytes of the body kept in the attempt record. */
  snippetBytes?: number;
}

/** Port: makes one webhook attempt; never throws (every failure is an AttemptResult with an error). */
export type WebhookSender = (options: SendOptions) => Promise<AttemptResult>;
