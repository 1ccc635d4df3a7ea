import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import { PluginRegistry } from "../../functions/adapters/plugins/plugin-registry.js";
import { loadConfig } from "../../functions/config/load.js";
import type { Config } from "../../functions/config/schema.js";
import { type AppContext, createAppContext } from "../../functions/context.js";
import { createApiKey, type Scope } from "../../functions/core/auth/api-keys.js";
import { newId } from "../../functions/core/ids.js";
import { createHandler } from "../../functions/handlers/api.js";
import { startHttpServer } from "../../functions/local/http-server.js";
import { createLogger } from "../../functions/logging/logger.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

export interface TestApp {
  app: AppContext;
  database: TestDatabase;
  url: string;
  adminKey: string;
  /** A key with just these scopes (and namespace). */
  keyWith(scopes: Scope[], namespace?: string): Promise<string>;
  request(
    method: string,
    path: string,
    options?: { body?: unknown; rawBody?: string; key?: string | null; headers?: Record<string, string> },
  ): Promise<{ status: number; headers: Headers; body: any; text: string }>;
  close(): Promise<void>;
}

/**
 * The API on a real HTTP port, in this process, on a database of the test file's own:
 * requests go through the local edge as API Gateway v2 events, as in production.
 */
export async function createTestApp(
  overrides: {
    app?: Omit<Partial<Config["app"]>, "worker"> & { worker?: Partial<Config["app"]["worker"]> };
    env?: Record<string, string>;
  } = {},
): Promise<TestApp> {
  const database = await createTestDatabase();
  // Files TME writes (the encryption key, the admin key) go to a directory of this app's own.
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "tme-test-app-"));
  const base = loadConfig({ configDir: "configurations", env: { TME_DATA_DIR: dataDir, ...overrides.env } });
  // Tests send many wrong keys from one address, and hundreds of requests a second with one
  // key: both limits are lifted unless a test sets them (test/integration/rate-limits.test.ts does).
  const config: Config = {
    ...base,
    app: {
      ...base.app,
      LOG_LEVEL: "ERROR",
      ...overrides.app,
      // Worker settings merge one level deep: a test names the ones it changes.
      worker: { ...base.app.worker, ...overrides.app?.worker },
      security: {
        ...base.app.security,
        auth_failures_per_minute: 1_000_000,
        key_requests_per_second: 0,
        ...overrides.app?.security,
      },
    },
  };
  const logger = createLogger(process.env.TEST_LOG_LEVEL === "DEBUG" ? "DEBUG" : "ERROR");
  const app: AppContext = createAppContext(
    config,
    database.db,
    database.url,
    logger,
    await PluginRegistry.load(config.plugins),
  );
  const server = await startHttpServer(
    createHandler(app),
    0,
    (error) => logger.error({ err: error }),
    "127.0.0.1",
    config.app.security,
  );
  const url = `http://127.0.0.1:${server.port}`;
  const keyWith = async (scopes: Scope[], namespace = "default") =>
    (
      await createApiKey(app.apiKeys, {
        name: `test-${scopes.join("+")}`,
        scopes,
        namespace,
        newId: () => newId("key"),
      })
    ).key;
  const adminKey = await keyWith(["admin"]);
  return {
    app,
    database,
    url,
    adminKey,
    keyWith,
    async request(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      const key = options.key === undefined ? adminKey : options.key;
      if (key !== null) headers.authorization ??= `Bearer ${key}`;
      let body: string | undefined = options.rawBody;
      if (options.body !== undefined) {
        body = JSON.stringify(options.body);
        headers["content-type"] ??= "application/json";
      }
      const response = await fetch(`${url}${path}`, { method, headers, body });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: response.status, headers: response.headers, body: parsed, text };
    },
    async close() {
      await server.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

type TestAppOverrides = Parameters<typeof createTestApp>[0];

/** The test file's app as withTestApp hands it out: the helper closes it. */
export type SharedTestApp = Omit<TestApp, "close">;

/**
 * The one app setup of a test file (or of a describe block): creates the app before its tests
 * and closes it after them, so a file says only how its app differs. The handle it returns reads
 * the app of the moment, so it is usable in tests and in hooks registered after this call; a
 * file's own afterAll hooks run before the app closes (vitest runs after-hooks in reverse).
 */
export function withTestApp(overrides?: TestAppOverrides): SharedTestApp {
  let current: TestApp | undefined;
  beforeAll(async () => {
    current = await createTestApp(overrides);
  });
  afterAll(async () => {
    await current?.close();
    current = undefined;
  });
  const app = (): TestApp => {
    if (!current)
      throw new Error("withTestApp: the app exists only inside tests and hooks, after its beforeAll");
    return current;
  };
  return {
    get app() {
      return app().app;
    },
    get database() {
      return app().database;
    },
    get url() {
      return app().url;
    },
    get adminKey() {
      return app().adminKey;
    },
    keyWith: (scopes, namespace) => app().keyWith(scopes, namespace),
    request: (method, path, options) => app().request(method, path, options),
  };
}
