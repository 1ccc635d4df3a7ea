import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { liveProcesses } from "./tme.js";

const BARE_SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), "bare-server.ts");

export interface HttpFigure {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Answers that were not 2xx, and connection errors: a run with any is refused, not averaged. */
  failures: number;
}

/** autocannon at `connections` keep-alive connections (no pipelining) for `seconds`. */
export async function load(options: {
  url: string;
  method: "GET" | "POST";
  connections: number;
  seconds: number;
  headers?: Record<string, string>;
  body?: string;
}): Promise<HttpFigure> {
  const run = autocannon({
    url: options.url,
    method: options.method,
    connections: options.connections,
    duration: options.seconds,
    headers: options.headers,
    body: options.body,
  });
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    run,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => {
          (run as unknown as { stop?: () => void }).stop?.();
          reject(
            new Error(
              `${options.method} ${options.url}: no end ${options.seconds + 60} s after a ${options.seconds} s load`,
            ),
          );
        },
        (options.seconds + 60) * 1000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  const failures = result.non2xx + result.errors;
  if (result["2xx"] === 0) {
    throw new Error(`${options.method} ${options.url}: no answer within the ${options.seconds} s of load`);
  }
  if (failures > 0) {
    throw new Error(
      `${options.method} ${options.url}: ${result.non2xx} non-2xx answers and ${result.errors} errors in ${result["2xx"]} requests`,
    );
  }
  return {
    requestsPerSecond: result["2xx"] / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result["2xx"],
    failures,
  };
}

export interface BareServer {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The bare INSERT/SELECT server in a process of its own. */
export async function startBareServer(databaseUrl: string, poolMax: number): Promise<BareServer> {
  const child = fork(BARE_SERVER, [databaseUrl, String(poolMax)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  const kill = () => child.kill("SIGKILL");
  liveProcesses.add(kill);
  child.once("exit", () => liveProcesses.delete(kill));
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (message: { port: number }) => resolve(message.port));
    child.once("exit", (code) => reject(new Error(`bare server exited with ${code}: ${stderr}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.send("stop");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
