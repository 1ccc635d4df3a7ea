import { createHash, randomBytes } from "node:crypto";
import { Forbidden, ValidationFailed } from "../errors.js";
import type { Keyset } from "../paging.js";

/**
 * Every scope a key may hold, in one list: the API routes, the key routes, the CLI and the
 * database all read it from here. Add a scope by adding it to this list (and to the table in
 * docs/security.md); nothing else enumerates them.
 */
export const SCOPES = [
  "tasks:read",
  "tasks:write",
  "schedules:write",
  /**
   * Beside tasks:write or schedules:write, to create anything that runs a shell command (a task
   * with a command, a schedule whose template has one, a trigger or restart of either): running
   * a command is more than queueing work, so a key that may queue work need not run commands.
   */
  "commands:run",
  "events:write",
  "metrics:read",
  "admin",
] as const;
export type Scope = (typeof SCOPES)[number];

/** The caller behind a request, as its API key says. */
export interface Principal {
  keyId: string;
  name: string;
  namespace: string;
  scopes: Scope[];
}

export const DEFAULT_NAMESPACE = "default";

/**
 * What a namespace name may be: the CLI's rule, applied everywhere a name comes in (keys,
 * an admin's ?namespace=). Lower case only, so "NSB" and "nsb" cannot be two tenants that
 * look alike; no dots, slashes or invisible characters, so a name is safe in a path or a log.
 */
export const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const NAMESPACE_RULE =
  "1-63 characters: lowercase letters, digits, _ or -, starting with a letter or digit";

export function isValidNamespace(name: string): boolean {
  return NAMESPACE_PATTERN.test(name);
}

/** A 400 naming the field when a namespace name breaks the rule. */
export function assertValidNamespace(name: string, field: string): void {
  if (!isValidNamespace(name)) {
    throw new ValidationFailed(`invalid ${field}: use ${NAMESPACE_RULE}`, [
      { path: field, message: `must match ${NAMESPACE_PATTERN.source} (${NAMESPACE_RULE})` },
    ]);
  }
}

/** A new key: 32 random bytes, prefixed so it is recognisable in a leaked-secret scan. */
export function generateApiKey(): { key: string; prefix: string } {
  const key = `tme_${randomBytes(32).toString("base64url")}`;
  return { key, prefix: key.slice(0, 10) };
}

/** Keys carry 256 bits of entropy, so a fast hash is safe and keeps auth cheap per request. */
export function hashApiKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** TME_BOOTSTRAP_API_KEY must be at least this long: a guessable admin key is no key. */
export const MIN_BOOTSTRAP_KEY_LENGTH = 32;

export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.includes("admin") || principal.scopes.includes(scope);
}

/** A list means any one of them will do (reads of schedules: tasks:read or schedules:write). */
export function requireScope(principal: Principal, scope: Scope | readonly Scope[]): void {
  const anyOf: readonly Scope[] = typeof scope === "string" ? [scope] : scope;
  if (!anyOf.some((s) => hasScope(principal, s))) throw new Forbidden(anyOf.join(" or "));
}

/**
 * The namespace a request acts in: the key's own, or for admin keys the one asked for.
 * A non-admin key asking for another namespace is refused rather than silently narrowed, and
 * a name that breaks the namespace rule is a 400 whoever asks.
 */
export function effectiveNamespace(principal: Principal, requested: string | undefined): string {
  if (requested !== undefined) assertValidNamespace(requested, "query.namespace");
  if (requested === undefined || requested === principal.namespace) return principal.namespace;
  if (!principal.scopes.includes("admin")) throw new Forbidden("admin");
  return requested;
}

/** A key as GET /keys shows it: everything but the key (which is never stored). */
export interface ApiKeyRecord {
  id: string;
  name: string;
  namespace: string;
  scopes: Scope[];
  prefix: string;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
  /** The key made from TME_BOOTSTRAP_API_KEY. */
  bootstrap: boolean;
}

export interface ApiKeyPage {
  keys: ApiKeyRecord[];
  next?: Keyset;
}

/** Port: where keys are kept. Only hashes go in. */
export interface ApiKeyStore {
  insert(key: StoredApiKey): Promise<void>;
  /**
   * Makes the bootstrap key exist: "created" (and any earlier bootstrap key revoked), "exists",
   * or "revoked" when this very key was revoked once: then it stays revoked.
   */
  ensureBootstrap(key: StoredApiKey): Promise<"created" | "exists" | "revoked">;
  /**
   * The live key with this hash (not revoked, not expired), read from the database on every
   * call: no cache, so a revocation holds from the next request in every process.
   */
  findByHash(hash: Buffer): Promise<Principal | undefined>;
  countActive(): Promise<number>;
  list(options: { limit: number; after?: Keyset }): Promise<ApiKeyPage>;
  get(id: string): Promise<ApiKeyRecord | undefined>;
  /** Sets revoked_at (once); false when no such key. */
  revoke(id: string): Promise<boolean>;
}

export interface StoredApiKey {
  id: string;
  name: string;
  namespace: string;
  scopes: Scope[];
  hash: Buffer;
  prefix: string;
  expiresAt?: Date | null;
}

export function parseScopes(list: string): Scope[] {
  const scopes = list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || unknown.length > 0) {
    throw new Error(`unknown scope ${unknown.join(", ") || "(none given)"}; allowed: ${SCOPES.join(", ")}`);
  }
  return [...new Set(scopes)] as Scope[];
}

/** Makes a key, stores its hash, and returns the only copy of the secret. */
export async function createApiKey(
  store: ApiKeyStore,
  input: {
    name: string;
    scopes: Scope[];
    namespace?: string;
    expiresAt?: Date | null;
    newId: () => string;
  },
): Promise<{ id: string; key: string; prefix: string }> {
  const namespace = input.namespace ?? DEFAULT_NAMESPACE;
  assertValidNamespace(namespace, "namespace");
  const { key, prefix } = generateApiKey();
  const id = input.newId();
  await store.insert({
    id,
    name: input.name,
    namespace,
    scopes: input.scopes,
    hash: hashApiKey(key),
    prefix,
    expiresAt: input.expiresAt ?? null,
  });
  return { id, key, prefix };
}

/**
 * TME_BOOTSTRAP_API_KEY: that exact key exists as an admin key of the default namespace,
 * unless it was revoked: a restart with the variable still set never brings it back.
 */
export async function ensureBootstrapKey(
  store: ApiKeyStore,
  key: string,
  newId: () => string = () => `key_bootstrap_${randomBytes(8).toString("hex")}`,
  name = "bootstrap (TME_BOOTSTRAP_API_KEY)",
): Promise<"created" | "exists" | "revoked"> {
  return store.ensureBootstrap({
    id: newId(),
    name,
    namespace: DEFAULT_NAMESPACE,
    scopes: ["admin"],
    hash: hashApiKey(key),
    prefix: key.slice(0, 4),
  });
}
