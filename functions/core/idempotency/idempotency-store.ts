/** Which request a key stands for: keys are per namespace and per route. */
export interface IdempotencyScope {
  namespace: string;
  /** "POST /task/create": the route's method and path template. */
  route: string;
  key: string;
}

/** The first response to a key, as a replay answers it. */
export interface StoredResponse {
  /** SHA-256 (hex) of the request body's canonical JSON: a reused key must carry the same body. */
  requestHash: string;
  status: number;
  body: unknown;
}

/**
 * Port: the responses recorded under Idempotency-Key. Used inside the request's transaction, so
 * the lock is held until its commit and the record commits (or not) with the change itself.
 */
export interface IdempotencyStore {
  /** Takes the key's lock for the rest of the transaction, then reads its response of the last 24 hours. */
  lockAndFind(scope: IdempotencyScope): Promise<StoredResponse | undefined>;
  /** Records (or replaces an expired) response for the key. */
  record(scope: IdempotencyScope, response: StoredResponse): Promise<void>;
  /** Deletes the records past their 24 hours; how many went. */
  pruneExpired(): Promise<number>;
}
