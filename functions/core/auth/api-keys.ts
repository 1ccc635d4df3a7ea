import { createHash, randomBytes } from "node:crypto";
import { Forbidden } from "../errors.js";

export const SCOPES = [
  "tasks:read",
  "tasks:write",
  "schedules:write",
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

/** A new key: 32 random bytes, prefixed so it is recognisable in a leaked-secret scan. */
export function generateApiKey(): { key: string; prefix: string } {
  const key = `tme_${randomBytes(32).toString("base64url")}`;
  return { key, prefix: key.slice(0, 10) };
}

/** Keys carry 256 bits of entropy, so a fast hash is safe and keeps auth cheap per request. */
export function hashApiKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

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
 * A non-admin key asking for another namespace is refused rather than silently narrowed.
 */
export function effectiveNamespace(principal: Principal, requested: string | undefined): string {
  if (requested === undefined || requested === principal.namespace) return principal.namespace;
  if (!principal.scopes.includes("admin")) throw new Forbidden("admin");
  return requested;
}

/** Port: where keys are kept. Only hashes go in. */
export interface ApiKeyStore {
  insert(key: StoredApiKey): Promise<void>;
  /** Creates or re-points the key with this id. */
  upsert(key: StoredApiKey): Promise<void>;
  findByHash(hash: Buffer): Promise<Principal | undefined>;
  countActive(): Promise<number>;
}

export interface StoredApiKey {
  id: string;
  name: string;
  namespace: string;
  scopes: Scope[];
  hash: Buffer;
  prefix: string;
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
  input: { name: string; scopes: Scope[]; namespace?: string; newId: () => string },
): Promise<{ id: string; key: string }> {
  const { key, prefix } = generateApiKey();
  const id = input.newId();
  await store.insert({
    id,
    name: input.name,
    namespace: input.namespace ?? DEFAULT_NAMESPACE,
    scopes: input.scopes,
    hash: hashApiKey(key),
    prefix,
  });
  return { id, key };
}

/** TME_BOOTSTRAP_API_KEY: that exact key exists as an admin key of the default namespace. */
export async function ensureBootstrapKey(store: ApiKeyStore, key: string): Promise<void> {
  await store.upsert({
    id: "key_bootstrap",
    name: "bootstrap (TME_BOOTSTRAP_API_KEY)",
    namespace: DEFAULT_NAMESPACE,
    scopes: ["admin"],
    hash: hashApiKey(key),
    prefix: key.slice(0, 10),
  });
}
