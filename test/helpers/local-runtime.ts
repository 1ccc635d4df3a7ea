import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import { loadConfig } from "../../functions/config/load.js";
import type { Config } from "../../functions/config/schema.js";
import { type RunningTme, startLocalRuntime } from "../../functions/local/runtime.js";
import { createLogger } from "../../functions/logging/logger.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

export interface InProcessTme {
  tme: RunningTme;
  database: TestDatabase;
  key: string;
  api(
    method: string,
    urlPath: string,
    body?: unknown,
    key?: string,
  ): Promise<{ status: number; body: any; text: string; headers: Headers }>;
  close(): Promise<void>;
}

const KEY = "tme_in_process_bootstrap_key_0123456789";

/**
 * The whole local runtime (HTTP edge, worker pool, outbox relay, webhooks, scheduler) in this
 * process, on the test file's own database: what `npm start` runs, with hooks a child process
 * cannot offer (an in-memory span exporter).
 */
export async function startInProcessTme(
  options: { app?: (app: Config["app"]) => Config["app"]; spanExporter?: SpanExporter } = {},
): Promise<InProcessTme> {
  const database = await createTestDatabase();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "tme-in-process-"));
  const base = loadConfig({
    configDir: "configurations",
    env: {
      DATABASE_URL: database.url,
      TME_DATA_DIR: dataDir,
      TME_BOOTSTRAP_API_KEY: KEY,
      PORT: "0",
      ALLOW_PRIVATE_CALLBACKS: "true",
    },
  });
  const fast: Config["app"] = {
    ...base.app,
    LOG_LEVEL: "ERROR",
    worker: { ...base.app.worker, poll_interval_ms: 100, heartbeat_seconds: 1 },
    retry: { base_delay_seconds: 0.05, max_delay_seconds: 0.2 },
    webhooks: { ...base.app.webhooks, retry_base_seconds: 0.2, timeout_seconds: 2 },
  };
  const config: Config = { ...base, app: options.app ? options.app(fast) : fast };
  const tme = await startLocalRuntime({
    config,
    logger: createLogger(process.env.TEST_LOG_LEVEL === "DEBUG" ? "DEBUG" : "ERROR"),
    print: () => {},
    spanExporter: options.spanExporter,
  });
  return {
    tme,
    database,
    key: KEY,
    async api(method, urlPath, body, key = KEY) {
      const response = await fetch(`${tme.url}${urlPath}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: response.status, body: parsed, text, headers: response.headers };
    },
    async close() {
      await tme.stop();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** One sample of a Prometheus text exposition. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text format (the subset prom-client writes: no timestamps, escaped quotes). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_m, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of the samples of `name` whose labels include `labels`. */
export function sampleSum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}
