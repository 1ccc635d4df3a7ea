import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { freePort } from "../../functions/local/free-port.js";
import { waitFor } from "./wait.js";

/** moto's server (the AWS APIs, offline) is installed in this machine's Python. */
export const motoInstalled =
  spawnSync("python3", ["-c", "import moto.server, flask"], { stdio: "ignore" }).status === 0;

/** Why a cloud twin's contract run is skipped here: said once, at collection. */
export const MOTO_MISSING =
  "moto_server is not installed (pip install 'moto[server]'), so the cloud twin cannot run";

export interface Moto {
  endpoint: string;
  /** For an AWS SDK client: moto's endpoint, a region, and throwaway credentials. */
  clientConfig: {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  region: string;
  account: string;
  stop(): Promise<void>;
}

/** A moto server of the caller's own on a free port, answering before this resolves. */
export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  const child: ChildProcess = spawn("python3", ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)], {
    stdio: "ignore",
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor(
    "moto_server",
    () =>
      fetch(`${endpoint}/moto-api/`).then(
        () => true,
        () => undefined,
      ),
    30_000,
    100,
  );
  const region = "us-east-1";
  return {
    endpoint,
    region,
    // moto's default account.
    account: "123456789012",
    clientConfig: {
      endpoint,
      region,
      credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
