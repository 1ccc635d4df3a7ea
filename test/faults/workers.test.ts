import { afterAll, describe, expect, it } from "vitest";
import { isRunning } from "../../functions/local/processes.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { startTme, type TmeProcess } from "../helpers/tme-process.js";
import { type Execution, evidenceCommand, executions, overlaps, startFaultProxy } from "./evidence.js";
import { BOOTSTRAP_KEY, call, type Scratch, scratch, until } from "./harness.js";

// Two TME processes on one server database. Tasks keep the default 30 s lease: only the workers
// table (a heartbeat every second, dead after 4 s of silence) can bring their tasks back sooner.
const PRESENCE = {
  presence_heartbeat_seconds: 1,
  presence_timeout_seconds: 4,
  kill_grace_seconds: 0.5,
  shutdown_grace_seconds: 1,
};
const TAGS = [0, 1, 2, 3];

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function started(env: Record<string, string>): Promise<TmeProcess> {
  const tme = await startTme(
    { TME_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY, MAX_CONCURRENT_TASKS: "4", ...env },
    120_000,
  );
  cleanups.push(() => tme.kill9());
  return tme;
}

/** Four commands started by `first`, then the second process up beside it. */
async function fourRunningOn(
  first: TmeProcess,
  s: Scratch,
  prefix: string,
  db: TestDatabase,
): Promise<{ tags: string[]; leaseEnds: number }> {
  const tags = TAGS.map((i) => `${prefix}_${i}`);
  for (const tag of tags) {
    const res = await call(first.url, "POST", "/task/create", {
      name: tag,
      // Long enough to be running still when the second process is up on a loaded machine.
      command: evidenceCommand(s.evidence, tag, 60),
      max_attempts: 1,
    });
    expect(res.status).toBe(201);
  }
  await until("the first worker to run all four", async () => executions(s.evidence).length === 4, 30_000);
  const rows = await db.db.rows<{ lease_expires_at: Date }>(
    "SELECT lease_expires_at FROM tasks WHERE name = ANY($1) AND status = 'running'",
    [tags],
  );
  expect(rows).toHaveLength(4);
  return { tags, leaseEnds: Math.min(...rows.map((r) => r.lease_expires_at.getTime())) };
}

/** The successor's runs began after the lost worker's had all ended (their traps wrote it). */
function judge(ran: Execution[], tags: string[]) {
  expect(overlaps(ran, isRunning)).toEqual([]);
  const first = ran.slice(0, 4);
  const second = ran.slice(4);
  expect(new Set(second.map((e) => e.tag))).toEqual(new Set(tags));
  expect(first.every((e) => e.endNs !== undefined)).toBe(true);
  const lastEndMs = Math.max(...first.map((e) => Number(e.endNs! / 1_000_000n)));
  const firstStartMs = Math.min(...second.map((e) => Number(e.startNs / 1_000_000n)));
  expect(firstStartMs).toBeGreaterThan(lastEndMs);
  return { firstStartMs, marginMs: firstStartMs - lastEndMs };
}

/** Each task runs again on `successor` under the same counted attempt: the lost run was infrastructure's. */
async function takenOverBy(db: TestDatabase, tags: string[], successor: TmeProcess) {
  const rows = await db.db.rows<{
    attempt: number;
    infra_retries: number;
    status: string;
    lease_owner: string;
  }>("SELECT attempt, infra_retries, status, lease_owner FROM tasks WHERE name = ANY($1)", [tags]);
  expect(rows.map((r) => [r.status, r.attempt, r.infra_retries])).toEqual(tags.map(() => ["running", 2, 1]));
  expect(rows.every((r) => r.lease_owner.includes(`:${successor.child.pid}:`))).toBe(true);
}

describe("a worker that dies beside another on a shared server", () => {
  it("kill -9: the other takes its running tasks back within seconds of its last heartbeat, long before their leases end; zero overlap, no attempt counted", async () => {
    const s = scratch(PRESENCE);
    cleanups.push(s.cleanup);
    const own = await createTestDatabase();
    cleanups.push(() => own.drop());
    const env = { DATABASE_URL: own.url, TME_CONFIG_DIR: s.configDir };
    const doomed = await started({ ...env, TME_DATA_DIR: `${s.dataDir}-doomed` });
    const { tags, leaseEnds } = await fourRunningOn(doomed, s, "killed", own);
    const survivor = await started({ ...env, TME_DATA_DIR: `${s.dataDir}-survivor` });
    expect(
      (await own.db.rows<{ n: number }>("SELECT count(*)::int AS n FROM workers"))[0]!.n,
      "both processes registered",
    ).toBe(2);

    const killedAt = Date.now();
    await doomed.kill9();
    await until(
      "the survivor to run all four again",
      async () => executions(s.evidence).length === 8,
      40_000,
    );
    const { firstStartMs, marginMs } = judge(executions(s.evidence), tags);
    // Taken back by the dead worker's missed heartbeats, not at the leases' end.
    expect(firstStartMs).toBeLessThan(leaseEnds);
    await takenOverBy(own, tags, survivor);
    const workers = await own.db.rows<{ id: string }>("SELECT id FROM workers");
    expect(workers).toHaveLength(1);
    // A clean stop (shutdown grace 1 s, then the four are handed back) removes its row.
    expect(await survivor.stop()).toBe(0);
    expect((await own.db.rows("SELECT id FROM workers")).length, "a clean stop leaves no row").toBe(0);
    console.log(
      `[faults] kill -9 of one of two workers: its 4 commands stopped ${marginMs} ms before the first successor started; ` +
        `taken over ${firstStartMs - killedAt} ms after the kill (leases would have ended ${leaseEnds - killedAt} ms after it); ` +
        "overlaps 0; attempts counted 1 of 2 runs each (infra_retries 1)",
    );
  }, 180_000);

  it("cut off by the network: its commands stop on its own clock before the other takes its tasks back, within seconds and long before their leases end", async () => {
    const s = scratch(PRESENCE);
    cleanups.push(s.cleanup);
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
    });
    const { tags, leaseEnds } = await fourRunningOn(cut, s, "cut", own);
    const healthy = await started({
      DATABASE_URL: own.url,
      TME_CONFIG_DIR: s.configDir,
      TME_DATA_DIR: `${s.dataDir}-healthy`,
    });

    const cutAt = Date.now();
    proxy.freeze();
    await until(
      "the healthy worker to run all four again",
      async () => executions(s.evidence).length === 8,
      40_000,
    );
    const { firstStartMs, marginMs } = judge(executions(s.evidence), tags);
    expect(firstStartMs).toBeLessThan(leaseEnds);
    await takenOverBy(own, tags, healthy);
    proxy.heal();
    console.log(
      `[faults] network cut of one of two workers: its 4 commands stopped ${marginMs} ms before the first successor started; ` +
        `taken over ${firstStartMs - cutAt} ms after the cut (leases would have ended ${leaseEnds - cutAt} ms after it); ` +
        "overlaps 0; attempts counted 1 of 2 runs each (infra_retries 1)",
    );
    await healthy.stop();
  }, 180_000);
});
