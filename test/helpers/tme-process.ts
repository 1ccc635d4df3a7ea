import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../functions/local/free-port.js";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI = path.join(REPO_ROOT, "functions/cli/bin.mjs");

export interface TmeProcess {
  child: ChildProcess;
  url: string;
  adminKey: string | undefined;
  output: () => string;
  /** SIGTERM to the process group, then wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL to the whole process group: a crash, no cleanup. */
  kill9(): Promise<void>;
}

/** Runs `tme start` as a child process (its own process group) and waits until it serves. */
export async function startTme(env: Record<string, string>, timeoutMs = 60_000): Promise<TmeProcess> {
  const port = Number(env.PORT ?? (await freePort()));
  // TME_NODE_FLAGS: node flags for the TME process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  // to profile it under a benchmark (NODE_OPTIONS refuses --cpu-prof).
  const child = spawn(process.execPath, [...(process.env.TME_NODE_FLAGS?.split(" ") ?? []), CLI, "start"], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: "ERROR", ...env, PORT: String(port) },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const deadline = Date.now() + timeoutMs;
  while (!out.includes("TME is running at")) {
    if (child.exitCode !== null) throw new Error(`tme start exited with ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) {
      process.kill(-child.pid!, "SIGKILL");
      throw new Error(`tme start did not come up within ${timeoutMs} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // The key, when printed, is the line after the "admin API key" line.
  await new Promise((r) => setTimeout(r, 50));
  const lines = out.split("\n");
  const keyLine = lines.findIndex((l) => l.startsWith("admin API key"));
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    adminKey: keyLine >= 0 ? lines[keyLine + 1]?.trim() : undefined,
    output: () => out,
    stop: async () => {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {}
      return exited;
    },
    kill9: async () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {}
      await exited;
    },
  };
}

/** Runs the CLI to completion. */
export function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: "ERROR", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}
