/**
 * Every error TME reports to a caller is one of these. Each carries its HTTP meaning
 * (status and code) here, in one place; the HTTP edge only serialises them.
 */
export interface ErrorDetail {
  path: string;
  message: string;
}

export class TmeError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetail[];
  readonly headers: Record<string, string>;
  /**
   * Whether a caller may see this error as it is. An unexposed one (InternalError) speaks to the
   * operator: the edge logs it and answers 500 internal_error with the request id instead.
   */
  readonly exposed: boolean = true;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: ErrorDetail[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.details = options.details ?? [];
    this.headers = options.headers ?? {};
  }
}

/**
 * A fault of TME, its setup or a task (configuration, the data directory, a plugin, a secret, a
 * refused address): its message is for the operator and the log. Should one reach the HTTP edge,
 * the caller gets 500 internal_error, as for any error TME did not expect.
 */
export class InternalError extends TmeError {
  // Each subclass names itself (override name): the cloud bundles are minified without
  // keepNames, so new.target.name would log a mangled name.
  override readonly exposed = false;
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(500, options.code ?? "internal_error", message, { cause: options.cause });
  }
}

/** `error` if a caller may see it as it is (a TmeError not marked internal). */
export function exposedError(error: unknown): TmeError | undefined {
  return error instanceof TmeError && error.exposed ? error : undefined;
}

/**
 * The error a caller is answered with: an exposed one as it is, anything else as 500
 * internal_error naming the request id, which finds the real error in the log.
 */
export function callerError(error: unknown, requestId: string): TmeError {
  return (
    exposedError(error) ?? new TmeError(500, "internal_error", `internal error (request id ${requestId})`)
  );
}

export class ValidationFailed extends TmeError {
  constructor(message: string, details: ErrorDetail[] = []) {
    super(400, "validation_error", message, { details });
  }
}

export class Unauthenticated extends TmeError {
  constructor(message = "missing or invalid API key") {
    super(401, "unauthenticated", message, { headers: { "WWW-Authenticate": "Bearer" } });
  }
}

export class Forbidden extends TmeError {
  constructor(scope: string) {
    super(403, "forbidden", `this API key lacks the scope "${scope}"`, {
      details: [{ path: "scope", message: `requires ${scope}` }],
    });
  }
}

export class NotFound extends TmeError {
  constructor(what: string, id: string) {
    super(404, "not_found", `${what} ${id} not found`);
  }
}

export class RouteNotFound extends TmeError {
  constructor(method: string, path: string) {
    super(404, "route_not_found", `no route for ${method} ${path}`);
  }
}

export class MethodNotAllowed extends TmeError {
  constructor(method: string, path: string, allowed: string[]) {
    super(405, "method_not_allowed", `${method} is not allowed on ${path}; allowed: ${allowed.join(", ")}`, {
      headers: { Allow: allowed.join(", ") },
    });
  }
}

export class Conflict extends TmeError {
  constructor(code: string, message: string, details: ErrorDetail[] = []) {
    super(409, code, message, { details });
  }
}

export class PayloadTooLarge extends TmeError {
  constructor(limitBytes: number) {
    super(413, "payload_too_large", `request body exceeds ${limitBytes} bytes`);
  }
}

export class UnsupportedMediaType extends TmeError {
  constructor(got: string | undefined) {
    super(415, "unsupported_media_type", `Content-Type must be application/json, got ${got ?? "none"}`);
  }
}

export class Unprocessable extends TmeError {
  constructor(message: string, details: ErrorDetail[] = []) {
    super(422, "unprocessable", message, { details });
  }
}

export class TooManyRequests extends TmeError {
  constructor(message: string, retryAfterSeconds: number) {
    super(429, "rate_limited", message, { headers: { "Retry-After": String(retryAfterSeconds) } });
  }
}

export class Unavailable extends TmeError {
  constructor(message: string, retryAfterSeconds?: number, code = "unavailable") {
    super(503, code, message, {
      headers: retryAfterSeconds === undefined ? {} : { "Retry-After": String(retryAfterSeconds) },
    });
  }
}

/**
 * The database cannot be reached (it restarts, a connection was cut, the pool cannot connect):
 * a passing condition, so the caller is told when to try again rather than shown a failure.
 */
export class DatabaseUnavailable extends Unavailable {
  constructor(cause?: unknown) {
    super("the database is unavailable; try again shortly", 2);
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * The database is up but cannot write: its disk is full or was made read-only. Nothing was
 * changed; unlike a lost connection it does not pass by itself, so the caller waits longer and
 * the operator is told by /health and the log.
 */
export class DatabaseStorageFull extends Unavailable {
  constructor(cause?: unknown) {
    super(
      "the database cannot write to its disk (full or read-only); nothing was changed; try again later",
      30,
      "database_storage_full",
    );
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * Turns zod-style issues into our details list: the field path joined with dots. An unknown
 * field is named by its own path (zod reports it at the object holding it), so a typo points
 * at the typo.
 */
export function issuesToDetails(
  issues: ReadonlyArray<{
    path: ReadonlyArray<PropertyKey>;
    message: string;
    code?: string;
    keys?: ReadonlyArray<string>;
  }>,
): ErrorDetail[] {
  const joined = (path: ReadonlyArray<PropertyKey>) => path.map(String).join(".") || "(body)";
  return issues.flatMap((issue) =>
    issue.code === "unrecognized_keys" && issue.keys && issue.keys.length > 0
      ? issue.keys.map((key) => ({ path: joined([...issue.path, key]), message: `unknown field "${key}"` }))
      : [{ path: joined(issue.path), message: issue.message }],
  );
}
