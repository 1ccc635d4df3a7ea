/** The dashboard's only way to TME: the public HTTP API, with the key from sessionStorage. */
/** One value kept in sessionStorage (gone with the tab); setting null removes it. */
function sessionItem(name: string) {
  return {
    get: (): string | null => sessionStorage.getItem(name),
    set(value: string | null): void {
      if (value === null) sessionStorage.removeItem(name);
      else sessionStorage.setItem(name, value);
    },
  };
}

const keyItem = sessionItem("tme.api_key");
/** The namespace an admin key looks at (null: the key's own); sent as ?namespace= on every call. */
const namespaceItem = sessionItem("tme.namespace");

export const storedKey = keyItem.get;
/** A new key (or none) starts on its own namespace. */
export function storeKey(key: string | null): void {
  keyItem.set(key);
  chooseNamespace(null);
}

export const chosenNamespace = namespaceItem.get;
export const chooseNamespace = namespaceItem.set;

/** The path with the chosen namespace added to its query, if one is chosen. */
export function inNamespace(path: string): string {
  const namespace = chosenNamespace();
  if (namespace === null) return path;
  return `${path}${path.includes("?") ? "&" : "?"}namespace=${encodeURIComponent(namespace)}`;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  const response = await fetch(inNamespace(path), {
    method,
    headers: {
      authorization: `Bearer ${storedKey() ?? ""}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const text = await response.text();
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (JSON.parse(text) as { error: { message: string } }).error.message;
    } catch {}
    throw new ApiError(response.status, message);
  }
  return response;
}

export async function get<T>(path: string): Promise<T> {
  return (await (await call("GET", path)).json()) as T;
}

export async function list<T>(path: string): Promise<Page<T>> {
  const response = await call("GET", path);
  return { items: (await response.json()) as T[], next: response.headers.get("x-next-cursor") };
}

export async function post<T>(path: string, body: unknown = {}): Promise<T> {
  const response = await call("POST", path, body);
  const text = await response.text();
  return (text ? JSON.parse(text) : {}) as T;
}

export interface WhoAmI {
  key_id: string;
  name: string;
  namespace: string;
  scopes: string[];
  admin: boolean;
}

export function can(who: WhoAmI | null, scope: string): boolean {
  return !!who && (who.admin || who.scopes.includes(scope));
}
