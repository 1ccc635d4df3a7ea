import type { Context } from "aws-lambda";

/**
 * A Lambda entry whose AWS wiring (Powertools, the SDK clients, the cloud context) is imported
 * on its first invocation instead of when its module is. The local runtime imports the worker
 * and webhook-dispatcher modules for their shared code and never invokes their entries: loaded
 * eagerly, that wiring cost it about 40 MB of memory, and the X-Ray SDK's async hook (it tracks
 * the end of every promise) CPU on every request. In Lambda the first invocation pays the same
 * imports its init phase did. A load that failed is tried again by the next invocation.
 */
export function lazyEntry<E, R>(
  load: () => Promise<(event: E, context: Context) => Promise<R>>,
): (event: E, context: Context) => Promise<R> {
  let entry: Promise<(event: E, context: Context) => Promise<R>> | undefined;
  return async (event, context) => {
    entry ??= load().catch((error: unknown) => {
      entry = undefined;
      throw error;
    });
    return (await entry)(event, context);
  };
}
