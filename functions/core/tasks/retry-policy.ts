import type { AppConfig } from "../../config/schema.js";

/**
 * Delay before the attempt after `attempt` (1-based) failed: exponential backoff with full
 * jitter, min(max, base * 2^(attempt-1)) * random. Full jitter spreads a burst of failures
 * (a dependency that went down for everyone) instead of retrying them in lockstep.
 * `random` returns [0, 1); injected so the schedule is testable without sleeping.
 */
export function retryDelayMs(attempt: number, retry: AppConfig["retry"], random: () => number): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 30));
  const ceilingMs = Math.min(retry.max_delay_seconds, retry.base_delay_seconds * 2 ** exponent) * 1000;
  return Math.floor(ceilingMs * Math.min(Math.max(random(), 0), 1));
}
