import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../helpers/tme-process.js";

export const BOOTSTRAP_KEY = "fault-test-bootstrap-key-0123456789abcdef";

/** A directory for one test's config, data and evidence, removed by cleanup(). */
export interface Scratch {
  dir: string;
  configDir: string;
  dataDir: string;
  evidence: string;
  cleanup(): void;
}

/** Copies configurations/ with worker settings changed; the data directory is empty. */
export function scratch(worker: Record<string, unknown>): Scratch {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tme-fault-"));
  const configDir = path.join(dir, "config");
  cpSync(path.join(REPO_ROOT, "configurations"), configDir, { recursive: true });
  const appFile = path.join(configDir, "app_config.yaml");
  const app = parse(readFileSync(appFile, "utf8"));
  app.worker = { ...app.worker, ...worker };
  // The evidence is written by each command to a file here, with its pid, and read against the
  // host's process table: outside a sandbox (a sandboxed command sees neither this directory
  // nor its host pid). The sandbox's own kills: test/e2e/command-sandbox.test.ts and
  // test/integration/shell-supervisor.test.ts.
  app.shell = { ...app.shell, sandbox: "none" };
  writeFileSync(appFile, stringify(app));
  return {
    dir,
    configDir,
    dataDir: path.join(dir, "data"),
    evidence: path.join(dir, "evidence.log"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

export async function call(base: string, method: string, route: string, body?: unknown): Promise<Reply> {
  try {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
  } catch (error) {
    // No answer at all (connection refused, reset): recorded as 0, never confused with a status.
    return { status: 0, body: { error: String(error) }, headers: new Headers() };
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Children of pid, from /proc (Linux). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export function descendantsOf(pid: number): number[] {
  const found: number[] = [];
  for (const child of childrenOf(pid)) found.push(child, ...descendantsOf(child));
  return found;
}
