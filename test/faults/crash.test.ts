import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { EmbeddedPostgres } from "../../functions/local/embedded-postgres.js";
import { isRunning } from "../../functions/local/processes.js";
import { startTme, type TmeProcess } from "../helpers/tme-process.js";
import { evidenceCommand, executions, overlaps } from "./evidence.js";
import { BOOTSTRAP_KEY, call, scratch, until } from "./harness.js";

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const TOTAL = 1000;
const COMMANDS = 200;
const TERMINAL = "('succeeded', 'failed', 'timed_out', 'cancelled')";

describe("kill -9 of TME", () => {
  // Found 2 overlaps once the per-command supervisor landed (2026-12-02): it SIGKILLed the
  // commands of a dead TME, and a command that wrote to TME's broken pipe died of SIGPIPE, so
  // neither left an end. Now each is stopped with SIGTERM and the kill grace, its output goes
  // through the supervisor, and the restart runs the tasks again only after that grace.
  it(`with ${TOTAL} tasks in flight: the restart takes its tasks back at once, every task ends succeeded, each command ran at most once more, zero overlap`, async () => {
    // The default lease (30 s): only the restart's takeover can make the 10 s.
    const s = scratch({ poll_interval_ms: 200, kill_grace_seconds: 0.5 });
    cleanups.push(s.cleanup);
    const env = {
      TME_CONFIG_DIR: s.configDir,
      TME_DATA_DIR: s.dataDir,
      TME_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY,
      MAX_CONCURRENT_TASKS: "32",
    };
    const first: TmeProcess = await startTme(env, 120_000);
    cleanups.push(() => first.kill9());
    // A mix: COMMANDS short shell commands that leave evidence (their tag is in the command),
    // the rest noop/sleep tasks.
    const tags: string[] = [];
    const bodies = Array.from({ length: TOTAL }, (_, i) => {
      if (i % (TOTAL / COMMANDS) === 0) {
        const tag = `crash_${i}`;
        tags.push(tag);
        return { name: "crash_command", command: evidenceCommand(s.evidence, tag, 0.3) };
      }
      return i % 2 ? { name: "noop" } : { name: "sleep", params: { seconds: 0.2 } };
    });
    // All created with their types paused, then let go at once: the pool claims them together
    // (its slots and its local queue), so however fast it runs, nearly all are in flight when
    // the kill comes, commands mid-run among them.
    const types = ["crash_command", "noop", "sleep"];
    for (const name of types)
      expect((await call(first.url, "POST", `/task-types/${name}/pause`)).status).toBe(200);
    const tagOf = new Map<string, string>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < bodies.length) {
          const i = next++;
          const res = await call(first.url, "POST", "/task/create", bodies[i]);
          expect(res.status).toBe(201);
          if (bodies[i]!.name === "crash_command") tagOf.set(res.body.id as string, `crash_${i}`);
        }
      }),
    );
    for (const name of types)
      expect((await call(first.url, "POST", `/task-types/${name}/resume`)).status).toBe(200);
    await until("some commands to run", async () => executions(s.evidence).length >= 20, 60_000);
    const db = await embeddedClient(s.dataDir);
    const countWhere = async (where: string) =>
      (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE ${where}`)).rows[0]!.n;
    const killFromNs = BigInt(Date.now()) * 1_000_000n;
    await first.kill9();
    const killToNs = BigInt(Date.now()) * 1_000_000n;
    const inFlight = TOTAL - (await countWhere(`status IN ${TERMINAL}`));
    const runningAtKill = await countWhere("status = 'running'");
    // In flight at the kill = not terminal in TME's records: a command that ended just before
    // the kill but whose result was not yet committed is run again (at least once), so each of
    // these may run twice, and every other command exactly once.
    const unfinished = new Set(
      (await db.query<{ id: string }>(`SELECT id FROM tasks WHERE NOT status IN ${TERMINAL}`)).rows.map((r) =>
        tagOf.get(r.id),
      ),
    );
    // Of those, the commands whose processes were running at the kill (started before it ended,
    // not ended before it began): their supervisors stop them (SIGTERM) when TME dies.
    const runningCommands = new Set(
      executions(s.evidence)
        .filter((e) => e.startNs < killToNs && (e.endNs === undefined || e.endNs > killFromNs))
        .map((e) => e.tag),
    );
    await db.end();
    expect(inFlight).toBeGreaterThanOrEqual(TOTAL / 2);
    expect(runningAtKill).toBeGreaterThan(0);

    const second = await startTme(env, 120_000);
    cleanups.push(() => second.kill9());
    const upAt = Date.now();
    const db2 = await embeddedClient(s.dataDir);
    // The restart took the killed instance's tasks back before it served (one owner per data
    // directory), not 30 s later when their leases would have run out.
    const stillHeld = (
      await db2.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM tasks WHERE status = 'running' AND lease_owner LIKE $1",
        [`%:${first.child.pid}:%`],
      )
    ).rows[0]!.n;
    expect(stillHeld).toBe(0);
    await until(
      "every task to be terminal",
      async () =>
        (await db2.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE status IN ${TERMINAL}`))
          .rows[0]!.n === TOTAL,
      60_000,
    );
    const recoveredMs = Date.now() - upAt;
    const statuses = (
      await db2.query<{ status: string; n: number }>(
        "SELECT status, count(*)::int AS n FROM tasks GROUP BY status",
      )
    ).rows;
    const counted = (
      await db2.query<{ over: number }>(
        "SELECT count(*)::int AS over FROM tasks WHERE attempt - infra_retries > 1",
      )
    ).rows[0]!.over;
    await db2.end();
    await second.stop();

    expect(statuses).toEqual([{ status: "succeeded", n: TOTAL }]);
    // The crash spent no task's attempt: each one that counted ran once.
    expect(counted).toBe(0);
    const ran = executions(s.evidence);
    const perTag = new Map<string, number>();
    for (const e of ran) perTag.set(e.tag, (perTag.get(e.tag) ?? 0) + 1);
    for (const tag of tags) {
      const times = perTag.get(tag) ?? 0;
      expect(times, tag).toBeGreaterThanOrEqual(1);
      expect(times, tag).toBeLessThanOrEqual(unfinished.has(tag) ? 2 : 1);
    }
    expect(overlaps(ran, isRunning)).toEqual([]);
    console.log(
      `[faults] kill -9 of TME: ${inFlight} of ${TOTAL} tasks in flight (${runningAtKill} running, ${runningCommands.size} commands mid-run); ` +
        `all terminal ${recoveredMs} ms after the restart served; reruns ${[...perTag.values()].filter((n) => n > 1).length}; overlaps 0; attempts counted beyond the first 0`,
    );
  }, 300_000);
});

async function embeddedClient(dataDir: string): Promise<pg.Client> {
  const running = EmbeddedPostgres.running({ dataDir, database: "tme" });
  if (!running) throw new Error("no embedded server running for this data directory");
  const client = new pg.Client({ connectionString: running.connectionString });
  client.on("error", () => {});
  await client.connect();
  return client;
}
