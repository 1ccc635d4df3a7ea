import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PeerJob, PeerMessage, PeerSystem } from "./peer-process.js";
import { openPollConnection } from "./postgres.js";

type PollConnection = Awaited<ReturnType<typeof openPollConnection>>;

import { liveProcesses, sleep, waitForCount } from "./tme.js";

const PEER_PROCESS = path.join(path.dirname(fileURLToPath(import.meta.url)), "peer-process.ts");

interface Peer {
  child: ChildProcess;
  next(type: PeerMessage["type"]): Promise<PeerMessage>;
  send(message: string): void;
  stop(): Promise<void>;
}

function forkPeer(job: PeerJob): Peer {
  const child = fork(PEER_PROCESS, [], {
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
  const inbox: PeerMessage[] = [];
  const waiters: Array<() => void> = [];
  let failure: Error | undefined;
  child.on("message", (message: PeerMessage) => {
    if (message.type === "error") failure = new Error(`${job.system}: ${message.message}`);
    else inbox.push(message);
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code) => {
      if (code !== 0 && !failure)
        failure = new Error(`${job.system} exited with ${code}: ${stderr.slice(-2000)}`);
      for (const wake of waiters.splice(0)) wake();
      resolve();
    }),
  );
  child.send(job);
  return {
    child,
    async next(type) {
      for (;;) {
        if (failure) throw failure;
        const index = inbox.findIndex((m) => m.type === type);
        if (index >= 0) return inbox.splice(index, 1)[0]!;
        if (child.exitCode !== null)
          throw new Error(`${job.system} exited before "${type}": ${stderr.slice(-2000)}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    send(message) {
      child.send(message);
    },
    async stop() {
      if (child.exitCode === null) {
        child.send("stop");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/** Jobs of the peer's queue that are finished, read from its own tables. */
/** How many of the drain's jobs are done, read on the poll connection. */
function finishedCount(system: PeerSystem, poll: PollConnection, total: number): () => Promise<number> {
  if (system === "pg-boss")
    return () =>
      poll.count("SELECT count(*) AS n FROM pgboss.job WHERE name = 'noop' AND state = 'completed'");
  // graphile-worker deletes a job when it completes.
  return async () => total - (await poll.count("SELECT count(*) AS n FROM graphile_worker._private_jobs"));
}

export interface DrainFigure {
  tasksPerSecond: number;
  finished: number;
  elapsedMs: number;
  capped: boolean;
}

/** N jobs inserted in bulk while no worker runs; then the worker starts and drains them. */
export async function peerDrain(
  system: PeerSystem,
  databaseUrl: string,
  concurrency: number,
  jobs: number,
  capMs: number,
  onProgress?: (finished: number) => void,
): Promise<DrainFigure> {
  const peer = forkPeer({ system, mode: "drain", databaseUrl, concurrency, jobs });
  let poll: PollConnection | undefined;
  try {
    await peer.next("ready");
    poll = await openPollConnection(databaseUrl);
    const started = performance.now();
    peer.send("go");
    const result = await waitForCount(finishedCount(system, poll, jobs), jobs, capMs, started, onProgress);
    return {
      tasksPerSecond: result.count / (result.elapsedMs / 1000),
      finished: result.count,
      elapsedMs: result.elapsedMs,
      capped: result.capped,
    };
  } finally {
    await poll?.close();
    await peer.stop();
  }
}

/** graphile-worker running; the harness adds one job every 1000/rate ms; created_at to handler start. */
export async function peerPickup(
  system: PeerSystem,
  databaseUrl: string,
  concurrency: number,
  jobs: number,
  ratePerSecond: number,
  onProgress?: (added: number) => void,
): Promise<number[]> {
  const peer = forkPeer({ system, mode: "pickup", databaseUrl, concurrency, jobs });
  try {
    await peer.next("ready");
    peer.send("go");
    await sleep(200);
    const pg = (await import("pg")).default;
    // A small pool, as TME's API has one: a slow insert does not hold back the next.
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
    try {
      await steadily(
        jobs,
        ratePerSecond,
        () => pool.query("SELECT graphile_worker.add_job('noop', '{}'::json)"),
        onProgress,
      );
    } finally {
      await pool.end();
    }
    const message = await Promise.race([
      peer.next("latencies"),
      sleep(30_000).then(() => {
        throw new Error(`${system}: not every pickup job ran within 30 s`);
      }),
    ]);
    return (message as { ms: number[] }).ms;
  } finally {
    await peer.stop();
  }
}

/** Calls fn n times, the i-th at start + i/rate s (not waiting for the previous call), then awaits them all. */
export async function steadily(
  n: number,
  ratePerSecond: number,
  fn: () => Promise<unknown>,
  onProgress?: (done: number) => void,
): Promise<void> {
  const interval = 1000 / ratePerSecond;
  const start = performance.now();
  const calls: Promise<unknown>[] = [];
  let done = 0;
  for (let i = 0; i < n; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 0) await sleep(wait);
    calls.push(fn().then(() => onProgress?.(++done)));
  }
  await Promise.all(calls);
}
