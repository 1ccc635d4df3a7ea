import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parse, stringify } from "yaml";
import { REPO_ROOT, startTme, type TmeProcess } from "../helpers/tme-process.js";
import { adminQuery, taskStorageBytes } from "./postgres.js";

/** The admin key every bench TME starts with (TME_BOOTSTRAP_API_KEY); only ever local. */
export const BENCH_KEY = "tme-bench-key-0000000000000000000000000000";
export const TASK_NAME = "noop";

/**
 * The shipped configuration with one change: the per-key token bucket (2000 requests/s by
 * default) is off, or the API measurement would measure the rate limiter. Everything else is
 * what `npm start` runs with.
 */
export function benchConfigDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tme-bench-config-"));
  cpSync(path.join(REPO_ROOT, "configurations"), dir, { recursive: true });
  const file = path.join(dir, "app_config.yaml");
  const app = parse(readFileSync(file, "utf8")) as { security: Record<string, unknown> };
  app.security.key_requests_per_second = 0;
  writeFileSync(file, stringify(app));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Processes the harness started and has not stopped yet: on Ctrl-C they are killed, so no
 * TME, peer or bare server outlives the run (TME runs in a process group of its own).
 */
export const liveProcesses = new Set<() => void>();

export interface BenchTme {
  process: TmeProcess;
  url: string;
  pid: number;
  request(method: string, route: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  /** Closes the harness's own keep-alive connections (TME limits connections per source address). */
  closeConnections(): void;
  stop(): Promise<void>;
}

/** `tme start` as a child process on the given database, with MAX_CONCURRENT_TASKS slots. */
export async function startBenchTme(options: {
  databaseUrl: string;
  configDir: string;
  concurrency: number;
}): Promise<BenchTme> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "tme-bench-data-"));
  const child = await startTme({
    DATABASE_URL: options.databaseUrl,
    TME_CONFIG_DIR: options.configDir,
    TME_DATA_DIR: dataDir,
    TME_BOOTSTRAP_API_KEY: BENCH_KEY,
    MAX_CONCURRENT_TASKS: String(options.concurrency),
    LOG_LEVEL: "ERROR",
  });
  const kill = () => {
    try {
      process.kill(-child.child.pid!, "SIGKILL");
    } catch {}
  };
  liveProcesses.add(kill);
  // At most 32 of the harness's own connections, closed before a load test so that the
  // load's 50 connections stay within security.max_connections_per_source (64).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const request = (method: string, route: string, body?: unknown) =>
    new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        `${child.url}${route}`,
        {
          method,
          agent,
          headers: {
            authorization: `Bearer ${BENCH_KEY}`,
            ...(payload === undefined ? {} : { "content-type": "application/json" }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString();
            resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as unknown) : null });
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  return {
    process: child,
    url: child.url,
    pid: child.child.pid!,
    request,
    closeConnections: () => agent.destroy(),
    stop: async () => {
      agent.destroy();
      await child.stop();
      liveProcesses.delete(kill);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function expectOk(
  response: Promise<{ status: number; json: unknown }>,
  what: string,
): Promise<unknown> {
  const { status, json } = await response;
  if (status < 200 || status > 299) throw new Error(`${what}: HTTP ${status} ${JSON.stringify(json)}`);
  return json;
}

export function createTask(tme: BenchTme): Promise<unknown> {
  return expectOk(tme.request("POST", "/task/create", { name: TASK_NAME, params: {} }), "POST /task/create");
}

/** Creates n tasks through the API, `parallel` requests in flight at a time. */
export async function createTasks(
  tme: BenchTme,
  n: number,
  parallel: number,
  onCreated?: (done: number) => void,
): Promise<void> {
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < n) {
      next++;
      await createTask(tme);
      onCreated?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, lane));
}

/** Resident set size of a process, from /proc (Linux), in bytes. */
export function rssBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb ? Number(kb) * 1024 : null;
  } catch {
    return null;
  }
}

export async function countByStatus(databaseUrl: string): Promise<Record<string, number>> {
  const rows = await adminQuery<{ status: string; n: string }>(
    databaseUrl,
    "SELECT status::text, count(*) AS n FROM tasks GROUP BY status",
  );
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until `done()` reaches n or the cap passes; polls every 10 ms (the same poll for
 * every system, so its granularity biases none).
 */
export async function waitForCount(
  done: () => Promise<number>,
  n: number,
  capMs: number,
  started: number,
  onProgress?: (count: number) => void,
): Promise<{ count: number; elapsedMs: number; capped: boolean }> {
  for (;;) {
    const count = await done();
    const now = performance.now();
    onProgress?.(count);
    if (count >= n) return { count, elapsedMs: now - started, capped: false };
    if (now - started >= capMs) return { count, elapsedMs: now - started, capped: true };
    await sleep(10);
  }
}

/**
 * Waits for the outbox relay to publish what the run wrote (so the tables are measured at
 * rest), then VACUUMs them as autovacuum would, so deleted rows count as free space.
 */
export async function settledStorage(databaseUrl: string): Promise<Record<string, number>> {
  // Until nothing is pending, or the count has stood still for a second (rows that no
  // local sink takes stay pending, and are counted as kept).
  const deadline = Date.now() + 10_000;
  let last = Number.NaN;
  let stillSince = Date.now();
  while (Date.now() < deadline) {
    const pending = await adminQuery<{ n: string }>(
      databaseUrl,
      "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL",
    ).catch(() => [{ n: "0" }]);
    const n = Number(pending[0]?.n ?? 0);
    if (n === 0) break;
    if (n !== last) {
      last = n;
      stillSince = Date.now();
    } else if (Date.now() - stillSince >= 1000) break;
    await sleep(100);
  }
  await adminQuery(databaseUrl, "VACUUM tasks, task_events, task_runs, outbox");
  return taskStorageBytes(databaseUrl);
}
