/**
 * Token buckets keyed by a string (a source address, a key id), held in this process's memory.
 * Pure apart from the clock, which is passed in, so the limits can be tested without sleeping.
 * Several TME processes each keep their own buckets: the limit is per process, which bounds
 * what one process serves and makes guessing keys slow, without a database write per request.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * @param capacity tokens a full bucket holds (the burst)
   * @param refillPerSecond tokens added each second, up to capacity
   * @param maxKeys buckets kept at most: the oldest are forgotten first (a full bucket is the
   *   same as none, so forgetting one never makes the limit stricter)
   */
  constructor(
    private readonly capacity: number,
    private readonly refillPerSecond: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 10_000,
  ) {}

  private current(key: string): { tokens: number; at: number } {
    const t = this.now();
    const bucket = this.buckets.get(key);
    if (!bucket) return { tokens: this.capacity, at: t };
    const tokens = Math.min(this.capacity, bucket.tokens + ((t - bucket.at) / 1000) * this.refillPerSecond);
    return { tokens, at: t };
  }

  private store(key: string, bucket: { tokens: number; at: number }): void {
    this.buckets.delete(key);
    if (bucket.tokens >= this.capacity) return;
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
  }

  /** Seconds until a token is there (0: one is there now). */
  waitSeconds(key: string): number {
    const { tokens } = this.current(key);
    if (tokens >= 1) return 0;
    return Math.max(1, Math.ceil((1 - tokens) / this.refillPerSecond));
  }

  /** Takes a token: 0 when it was there, else the seconds to wait (and nothing is taken). */
  take(key: string): number {
    const bucket = this.current(key);
    if (bucket.tokens < 1) {
      this.store(key, bucket);
      return Math.max(1, Math.ceil((1 - bucket.tokens) / this.refillPerSecond));
    }
    this.store(key, { tokens: bucket.tokens - 1, at: bucket.at });
    return 0;
  }
}

export interface RateLimitSettings {
  auth_failures_per_minute: number;
  key_requests_per_second: number;
  key_burst: number;
}

/**
 * The two limits of the API edge: refused authentications per source address (a key guesser
 * is slowed to a few tries a minute, and then refused outright until its bucket refills,
 * whatever it sends), and requests per key (one client cannot starve the others).
 */
export class RequestLimits {
  private readonly failures: TokenBuckets;
  private readonly perKey: TokenBuckets | undefined;

  constructor(settings: RateLimitSettings, now: () => number = Date.now) {
    this.failures = new TokenBuckets(
      settings.auth_failures_per_minute,
      settings.auth_failures_per_minute / 60,
      now,
    );
    this.perKey =
      settings.key_requests_per_second > 0
        ? new TokenBuckets(settings.key_burst, settings.key_requests_per_second, now)
        : undefined;
  }

  /** Seconds this source must wait before it may authenticate again (0: it may now). */
  sourceBlockedFor(source: string): number {
    return this.failures.waitSeconds(source);
  }

  /** Counts a refused authentication; returns the wait when that spent the source's last try. */
  recordFailure(source: string): number {
    const wait = this.failures.take(source);
    return wait > 0 ? wait : this.failures.waitSeconds(source);
  }

  /** Takes a request from the key's bucket: 0, or the seconds to wait. */
  takeRequest(keyId: string): number {
    return this.perKey ? this.perKey.take(keyId) : 0;
  }
}
