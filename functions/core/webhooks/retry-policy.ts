/**
 * When to try a failed webhook delivery again. Pure: time and randomness come in as arguments,
 * so the whole schedule is tested without sleeping.
 *
 * The nominal delays, with the default base of 5 s, are 5 s, 30 s, 2 min, 10 min, 1 h, 3 h, 6 h,
 * then every 12 h, each with +-20 % jitter (so endpoints that failed together do not all come
 * back at the same instant), until the next try would fall after the give-up window (24 h by
 * default) measured from the first attempt: then the delivery is given up.
 */
const NOMINAL_STEPS_AT_BASE_5 = [5, 30, 120, 600, 3600, 10_800, 21_600, 43_200];
const JITTER = 0.2;

export interface RetryPolicy {
  /** Scales the whole schedule: 5 gives the production one; tests use a fraction of a second. */
  baseSeconds: number;
  giveUpAfterMs: number;
}

/** Nominal delay (no jitter) before try number `failedAttempts + 1`. */
export function nominalRetryDelayMs(failedAttempts: number, baseSeconds: number): number {
  const index = Math.min(Math.max(failedAttempts, 1), NOMINAL_STEPS_AT_BASE_5.length) - 1;
  return Math.round(NOMINAL_STEPS_AT_BASE_5[index]! * (baseSeconds / 5) * 1000);
}

export type RetryDecision = { retry: true; at: Date } | { retry: false; reason: string };

/**
 * After a failed attempt: the next try's time, or give up.
 * @param failedAttempts attempts made in this delivery so far (>= 1)
 * @param retryAfterMs an endpoint's Retry-After (429/503), honoured instead of the schedule
 *   when it asks for a longer wait
 */
export function nextRetry(
  policy: RetryPolicy,
  input: {
    failedAttempts: number;
    firstAttemptAt: Date;
    now: Date;
    retryAfterMs?: number;
    random?: () => number;
  },
): RetryDecision {
  const random = input.random ?? Math.random;
  const nominal = nominalRetryDelayMs(input.failedAttempts, policy.baseSeconds);
  const jittered = Math.round(nominal * (1 - JITTER + 2 * JITTER * random()));
  const delay = Math.max(jittered, input.retryAfterMs ?? 0);
  const at = new Date(input.now.getTime() + delay);
  if (at.getTime() > input.firstAttemptAt.getTime() + policy.giveUpAfterMs) {
    return {
      retry: false,
      reason: `given up after ${input.failedAttempts} attempts: the next try would fall after the ${formatWindow(policy.giveUpAfterMs)} retry window`,
    };
  }
  return { retry: true, at };
}

function formatWindow(ms: number): string {
  return ms >= 3_600_000 ? `${+(ms / 3_600_000).toFixed(2)} h` : `${+(ms / 1000).toFixed(1)} s`;
}

/**
 * Retry-After as a wait in ms: delta-seconds or an HTTP date. Garbage is ignored (undefined),
 * and a wait is capped so a hostile endpoint cannot park a delivery for a year.
 */
export function parseRetryAfter(
  value: string | undefined,
  now: Date,
  capMs = 24 * 3_600_000,
): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  let ms: number;
  if (/^\d+$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else {
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    ms = at - now.getTime();
  }
  return Math.min(Math.max(ms, 0), capMs);
}
