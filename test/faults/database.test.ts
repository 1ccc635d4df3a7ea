import { readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbeddedPostgres } from "../../functions/local/embedded-postgres.js";
import { isRunning } from "../../functions/local/processes.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { startTme, type TmeProcess } from "../helpers/tme-process.js";
import { evidenceCommand, executions, overlaps, startFaultProxy } from "./evidence.js";
import { BOOTSTRAP_KEY, call, type Scratch, scratch, sleep, until } from "./harness.js";

let database: TestDatabase;
const cleanups: Array<() => unknown> = [];
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await database.drop();
});

const FAST = { lease_seconds: 4, heartbeat_seconds: 1, kill_grace_seconds: 0.5, poll_interval_ms: 200 };

async function started(env: Record<string, string>): Promise<TmeProcess> {
  const tme = await startTme({ TME_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY, ...env }, 120_000);
  cleanups.push(() => tme.kill9());
  return tme;
}

/**
 * Creates tasks at a steady pace while `during` runs, and tells what every request answered.
 * Each task's command writes its evidence line, so "completed once" is read from outside TME.
 */
async function underCreateLoad(
  tme: TmeProcess,
  s: Scratch,
  prefix: string,
  during: () => Promise<void>,
): Promise<{ created: string[]; statuses: Map<number, number> }> {
  const created: string[] = [];
  const statuses = new Map<number, number>();
  let stop = false;
  let n = 0;
  const creator = async () => {
    while (!stop) {
      const tag = `${prefix}_${n++}`;
      const res = await call(tme.url, "POST", "/task/create", {
        name: tag,
        command: evidenceCommand(s.evidence, tag, 0),
      });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 201) created.push(tag);
      if (res.status === 503) expect(res.headers.get("retry-after")).toBeTruthy();
      await sleep(20);
    }
  };
  const creators = [creator(), creator()];
  await during();
  stop = true;
  await Promise.all(creators);
  return { created, statuses };
}

const statusOf = async (tags: string[]) =>
  database.db.rows<{ name: string; status: string }>("SELECT name, status FROM tasks WHERE name = ANY($1)", [
    tags,
  ]);

describe("a lost database", () => {
  it("pg_terminate_backend of every TME connection under load: TME stays up and recovers", async () => {
    const s = scratch(FAST);
    cleanups.push(s.cleanup);
    const tme = await started({
      DATABASE_URL: database.url,
      TME_CONFIG_DIR: s.configDir,
      TME_DATA_DIR: s.dataDir,
    });
    let terminated = 0;
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    const { created, statuses } = await underCreateLoad(tme, s, "term", async () => {
      for (let round = 0; round < 3; round++) {
        await sleep(1500);
        const { rowCount } = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'tme%'`,
        );
        terminated += rowCount ?? 0;
      }
      await sleep(1500);
    });
    await admin.end();
    expect(terminated).toBeGreaterThan(3);
    expect(tme.child.exitCode).toBeNull();
    // No 500 and no dropped connection: 201, or 503 with Retry-After while a pool reconnects.
    expect([...statuses.keys()].filter((code) => code !== 201 && code !== 503)).toEqual([]);
    const recoveredAt = Date.now();
    await until(
      "every created task to succeed",
      async () => (await statusOf(created)).filter((t) => t.status === "succeeded").length === created.length,
      60_000,
    );
    const ran = executions(s.evidence).filter((e) => created.includes(e.tag));
    const perTag = new Map<string, number>();
    for (const e of ran) perTag.set(e.tag, (perTag.get(e.tag) ?? 0) + 1);
    expect([...perTag.values()].filter((count) => count !== 1)).toEqual([]);
    expect(perTag.size).toBe(created.length);
    expect((await call(tme.url, "GET", "/health")).status).toBe(200);
    console.log(
      `[faults] pg_terminate_backend: ${terminated} connections killed in 3 rounds; answers ${JSON.stringify(Object.fromEntries(statuses))}; ` +
        `${created.length} created tasks all succeeded once, last one ${Date.now() - recoveredAt} ms after the load ended`,
    );
  }, 180_000);

  it("kill -9 of the embedded postmaster under create load: TME stays up, answers 503, restarts it, every 201 completes once", async () => {
    // A lease longer than the outage: a worker that cannot renew stops its work (by design), so
    // "exactly once" holds when the database is back within the lease.
    const s = scratch({ ...FAST, lease_seconds: 15 });
    cleanups.push(s.cleanup);
    const tme = await started({ TME_CONFIG_DIR: s.configDir, TME_DATA_DIR: s.dataDir });
    const postmasterPid = () =>
      Number(readFileSync(path.join(s.dataDir, "pg", "postmaster.pid"), "utf8").split("\n")[0]);
    const killed = postmasterPid();
    let sawRecovering = false;
    let downForMs = 0;
    const { created, statuses } = await underCreateLoad(tme, s, "pm", async () => {
      await sleep(1500);
      process.kill(killed, "SIGKILL");
      const at = Date.now();
      await until(
        "the database to be back",
        async () => {
          const health = await call(tme.url, "GET", "/health");
          if (health.body.database === "recovering") sawRecovering = true;
          return health.status === 200;
        },
        60_000,
      );
      downForMs = Date.now() - at;
      await sleep(1500);
    });
    expect(tme.child.exitCode).toBeNull();
    expect(isRunning(killed)).toBe(false);
    expect(postmasterPid()).not.toBe(killed);
    expect(statuses.get(503) ?? 0).toBeGreaterThan(0);
    expect([...statuses.keys()].filter((code) => code !== 201 && code !== 503)).toEqual([]);
    await until("every created task to succeed", async () => allSucceeded(s.dataDir, created), 60_000);
    const perTag = new Map<string, number>();
    for (const e of executions(s.evidence)) perTag.set(e.tag, (perTag.get(e.tag) ?? 0) + 1);
    for (const tag of created) expect(perTag.get(tag), tag).toBe(1);
    console.log(
      `[faults] postmaster kill -9: database back after ${downForMs} ms (health said recovering: ${sawRecovering}); ` +
        `answers ${JSON.stringify(Object.fromEntries(statuses))}; ${created.length} created tasks each ran exactly once`,
    );
  }, 240_000);

  // Once skipped: it timed out waiting for the takeover whenever it ran after the
  // pg_terminate_backend test (the clean-clone CI rehearsal; here 2 of 2), and passed alone.
  // The earlier tests' TME processes live until afterAll, on the same database, and took part
  // in the race for these tasks. It now has a database of its own.
  it("a TCP proxy cutting one worker from the database: its commands stop before another takes over, zero overlap", async () => {
    const s = scratch(FAST);
    cleanups.push(s.cleanup);
    // A database of its own: what earlier tests of this file leave in theirs (tasks whose 201
    // was lost, runs of a TME killed -9) must not stand in the healthy worker's way.
    const own = await createTestDatabase();
    cleanups.push(() => own.drop());
    const url = new URL(own.url);
    const proxy = await startFaultProxy(Number(url.port || 5432), url.hostname);
    cleanups.push(() => proxy.close());
    const viaProxy = new URL(own.url);
    viaProxy.port = String(proxy.port);
    const cut = await started({
      DATABASE_URL: viaProxy.toString(),
      TME_CONFIG_DIR: s.configDir,
      TME_DATA_DIR: `${s.dataDir}-cut`,
      MAX_CONCURRENT_TASKS: "4",
    });
    const tags = [0, 1, 2, 3].map((i) => `cut_${i}`);
    for (const tag of tags) {
      const res = await call(cut.url, "POST", "/task/create", {
        name: tag,
        command: evidenceCommand(s.evidence, tag, 20),
        max_attempts: 1,
      });
      expect(res.status).toBe(201);
    }
    await until(
      "the cut-off worker to run all four",
      async () => executions(s.evidence).length === 4,
      30_000,
    );
    const healthy = await started({
      DATABASE_URL: own.url,
      TME_CONFIG_DIR: s.configDir,
      TME_DATA_DIR: `${s.dataDir}-healthy`,
      MAX_CONCURRENT_TASKS: "4",
    });
    const cutAt = Date.now();
    proxy.freeze();
    await until(
      "the healthy worker to take all four over",
      async () => executions(s.evidence).length === 8,
      40_000,
    );
    const takeoverMs = Date.now() - cutAt;
    const ran = executions(s.evidence);
    const found = overlaps(ran, isRunning);
    expect(found).toEqual([]);
    const first = ran.slice(0, 4);
    const second = ran.slice(4);
    // The frozen worker's commands all ended (their trap wrote the end), before any successor began.
    const micros = (ns: bigint) => Number(ns / 1000n);
    const lastEnd = Math.max(...first.map((e) => micros(e.endNs ?? 0n)));
    const firstStart = Math.min(...second.map((e) => micros(e.startNs)));
    expect(first.every((e) => e.endNs !== undefined)).toBe(true);
    const marginMs = (firstStart - lastEnd) / 1000;
    expect(marginMs).toBeGreaterThan(0);
    const rows = await own.db.rows<{ infra_retries: number; attempt: number }>(
      "SELECT infra_retries, attempt FROM tasks WHERE name = ANY($1)",
      [tags],
    );
    expect(rows.map((r) => [r.attempt, r.infra_retries])).toEqual(tags.map(() => [2, 1]));
    proxy.heal();
    console.log(
      `[faults] TCP cut: 4 commands of the cut-off worker stopped ${marginMs.toFixed(0)} ms before the first successor started; ` +
        `taken over ${takeoverMs} ms after the cut; overlaps 0; attempts counted 1 of 2 runs each (infra_retries 1)`,
    );
    await healthy.stop();
  }, 180_000);
});

/** Every tag's task succeeded, read straight from the embedded server TME runs (its data directory says where). */
async function allSucceeded(dataDir: string, tags: string[]): Promise<boolean> {
  const running = EmbeddedPostgres.running({ dataDir, database: "tme" });
  if (!running) return false;
  const client = new pg.Client({ connectionString: running.connectionString });
  client.on("error", () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM tasks WHERE name = ANY($1) AND status = 'succeeded'",
      [tags],
    );
    return rows[0]!.n === tags.length;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

describe("a frozen worker", () => {
  // Timed out once waiting for the takeover (2026-12-02): a TME stopped between two statements
  // of a transaction (a heartbeat's) held its tasks' row locks, which the reaper's SKIP LOCKED
  // passes by for ever. TME's sessions now end after idle_in_transaction_session_timeout
  // (test/integration/frozen-transaction.test.ts shows both sides).
  it("SIGSTOP of a worker past its lease while a second runs: its commands stop before the takeover, zero overlap", async () => {
    const s = scratch(FAST);
    cleanups.push(s.cleanup);
    const own = await createTestDatabase();
    cleanups.push(() => own.drop());
    const frozen = await started({
      DATABASE_URL: own.url,
      TME_CONFIG_DIR: s.configDir,
      TME_DATA_DIR: `${s.dataDir}-frozen`,
      MAX_CONCURRENT_TASKS: "4",
    });
    const tags = [0, 1, 2, 3].map((i) => `frozen_${i}`);
    for (const tag of tags) {
      const res = await call(frozen.url, "POST", "/task/create", {
        name: tag,
        command: evidenceCommand(s.evidence, tag, 20),
        max_attempts: 1,
      });
      expect(res.status).toBe(201);
    }
    await until("the frozen worker to run all four", async () => executions(s.evidence).length === 4, 30_000);
    await started({
      DATABASE_URL: own.url,
      TME_CONFIG_DIR: s.configDir,
      TME_DATA_DIR: `${s.dataDir}-healthy`,
      MAX_CONCURRENT_TASKS: "4",
    });
    // The whole of TME (its process group) is frozen; only the per-command supervisors, in
    // groups of their own, keep their clocks.
    const stoppedAt = Date.now();
    process.kill(-frozen.child.pid!, "SIGSTOP");
    cleanups.push(() => {
      try {
        process.kill(-frozen.child.pid!, "SIGCONT");
      } catch {}
    });
    await until(
      "the healthy worker to take all four over",
      async () => executions(s.evidence).length === 8,
      40_000,
    );
    const takeoverMs = Date.now() - stoppedAt;
    const ran = executions(s.evidence);
    expect(overlaps(ran, isRunning)).toEqual([]);
    const first = ran.slice(0, 4);
    const second = ran.slice(4);
    const micros = (ns: bigint) => Number(ns / 1000n);
    expect(first.every((e) => e.endNs !== undefined)).toBe(true);
    const lastEnd = Math.max(...first.map((e) => micros(e.endNs ?? 0n)));
    const firstStart = Math.min(...second.map((e) => micros(e.startNs)));
    const marginMs = (firstStart - lastEnd) / 1000;
    expect(marginMs).toBeGreaterThan(0);
    process.kill(-frozen.child.pid!, "SIGCONT");
    console.log(
      `[faults] SIGSTOP: 4 commands of the frozen worker stopped ${Math.round(marginMs)} ms before the first successor started; ` +
        `taken over ${takeoverMs} ms after the freeze; overlaps 0`,
    );
  }, 180_000);
});
