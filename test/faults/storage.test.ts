import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { EmbeddedPostgres } from "../../functions/local/embedded-postgres.js";
import { CLI, REPO_ROOT, startTme, type TmeProcess } from "../helpers/tme-process.js";
import { evidenceCommand, executions } from "./evidence.js";
import { BOOTSTRAP_KEY, call, type Scratch, scratch, sleep, until } from "./harness.js";

/**
 * The data directory on a small tmpfs of the test's own, so that "full" and "read-only" are
 * real conditions of the file system PostgreSQL writes to, not simulated by TME. Mounting needs
 * root (CI runs as root); without it the tests fail saying so, rather than pass unseen.
 */
interface Volume {
  mountPoint: string;
  dataDir: string;
  fill(): void;
  free(): void;
  readOnly(on: boolean): void;
  unmount(): void;
}

function mountVolume(s: Scratch, sizeMb: number): Volume {
  const mountPoint = path.join(s.dir, "volume");
  mkdirSync(mountPoint, { recursive: true });
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMb}m`, "tmpfs", mountPoint]);
  if (mounted.status !== 0)
    throw new Error(
      `the storage fault tests mount a tmpfs, which needs root (CI runs as root): ${mounted.stderr.toString().trim()}`,
    );
  const filler = path.join(mountPoint, "filler");
  return {
    mountPoint,
    dataDir: path.join(mountPoint, "data"),
    // dd stops at ENOSPC; its failure is the point.
    fill: () => void spawnSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=1M"]),
    free: () => rmSync(filler, { force: true }),
    readOnly: (on) => execFileSync("mount", ["-o", `remount,${on ? "ro" : "rw"}`, mountPoint]),
    unmount: () => void spawnSync("umount", ["-l", mountPoint]),
  };
}

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function startOn(dataDir: string): Promise<TmeProcess> {
  // Commands outside the sandbox, as in scratch(): their evidence file is in this test's
  // directory, which a sandboxed command (a private /tmp) would not see.
  const tme = await startTme(
    { TME_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY, TME_DATA_DIR: dataDir, SHELL_SANDBOX: "none" },
    120_000,
  );
  cleanups.push(() => tme.kill9());
  return tme;
}

async function create(tme: TmeProcess, s: Scratch, tag: string) {
  return call(tme.url, "POST", "/task/create", { name: tag, command: evidenceCommand(s.evidence, tag, 0) });
}

/** Rows and index entries PostgreSQL itself finds inconsistent (amcheck), and the task count. */
async function checkIntegrity(dataDir: string): Promise<{ problems: string[]; tasks: number }> {
  const running = EmbeddedPostgres.running({ dataDir, database: "tme" });
  if (!running) throw new Error("no embedded server running for this data directory");
  const client = new pg.Client({ connectionString: running.connectionString });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query("CREATE EXTENSION IF NOT EXISTS amcheck");
    const problems: string[] = [];
    const tables = await client.query<{ name: string }>(
      "SELECT c.oid::regclass::text AS name FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'",
    );
    for (const { name } of tables.rows) {
      const heap = await client.query<{ msg: string }>("SELECT msg FROM verify_heapam($1::regclass)", [name]);
      problems.push(...heap.rows.map((r) => `${name}: ${r.msg}`));
    }
    const indexes = await client.query<{ name: string }>(
      `SELECT c.oid::regclass::text AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace`,
    );
    for (const { name } of indexes.rows) {
      // Throws on a broken index; heapallindexed also proves every row is in it.
      await client
        .query("SELECT bt_index_check($1::regclass, true)", [name])
        .catch((error: Error) => problems.push(`${name}: ${error.message}`));
    }
    const count = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks");
    return { problems, tasks: count.rows[0]!.n };
  } finally {
    await client.end();
  }
}

describe("the data directory's disk", () => {
  // Found 12 task rows for 11 answers of 201 (2026-12-02): the audit row was written after the
  // create had committed, and failed on the full disk. It is now written in the create's commit
  // (test/integration/create-audit-commit.test.ts).
  it("full: writes answer 503 database_storage_full (never 500), /health says storage_full; once space is freed every 201 runs once and nothing is corrupt", async () => {
    const s = scratch({ poll_interval_ms: 200 });
    cleanups.push(() => s.cleanup());
    const volume = mountVolume(s, 300);
    cleanups.push(() => volume.unmount());

    let tme = await startOn(volume.dataDir);
    const created: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await create(tme, s, `before_${i}`);
      expect(res.status).toBe(201);
      created.push(`before_${i}`);
    }

    volume.fill();
    const filledAt = Date.now();
    const statuses = new Map<number, number>();
    let refusal: Awaited<ReturnType<typeof call>> | undefined;
    for (let i = 0; i < 40; i++) {
      const res = await create(tme, s, `full_${i}`);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 201) created.push(`full_${i}`);
      if (res.status === 503) refusal = res;
    }
    // Rows that fit in pages PostgreSQL already had may still be written; nothing else is a 500.
    expect([...statuses.keys()].every((status) => status === 201 || status === 503)).toBe(true);
    expect(refusal, "no write was refused on a full disk").toBeDefined();
    expect((refusal!.body.error as { code: string }).code).toBe("database_storage_full");
    expect(Number(refusal!.headers.get("retry-after"))).toBeGreaterThan(0);
    const health = await fetch(`${tme.url}/health`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { database: string }).database).toBe("storage_full");
    expect(tme.output()).toContain("the database cannot write to its disk");

    volume.free();
    const freedAt = Date.now();
    let n = 0;
    await until(
      "a create to succeed once space is freed",
      async () => {
        const tag = `after_${n++}`;
        const res = await create(tme, s, tag);
        if (res.status === 201) created.push(tag);
        return res.status === 201;
      },
      60_000,
    );
    const writableAfterMs = Date.now() - freedAt;
    await until(
      "every acknowledged task to run",
      async () => {
        const ended = new Set(
          executions(s.evidence)
            .filter((e) => e.endNs !== undefined)
            .map((e) => e.tag),
        );
        return created.every((tag) => ended.has(tag));
      },
      90_000,
    );

    // Stopped and started again on the same files: the server's own checks find nothing broken.
    expect(await tme.stop()).toBe(0);
    tme = await startOn(volume.dataDir);
    const integrity = await checkIntegrity(volume.dataDir);
    expect(integrity.problems).toEqual([]);
    expect(integrity.tasks).toBe(created.length);
    const perTag = new Map<string, number>();
    for (const e of executions(s.evidence)) perTag.set(e.tag, (perTag.get(e.tag) ?? 0) + 1);
    expect(created.filter((tag) => perTag.get(tag) !== 1)).toEqual([]);
    expect(await tme.stop()).toBe(0);
    console.log(
      `[faults] disk full: ${JSON.stringify(Object.fromEntries(statuses))} answered while full (${Date.now() - filledAt} ms test), ` +
        `writes back ${writableAfterMs} ms after space was freed; ${created.length} acknowledged tasks each ran once; amcheck clean`,
    );
  }, 300_000);

  it("read-only: TME refuses to start with one clear line and exit code 1, then starts on the same data once writable", async () => {
    const s = scratch({});
    cleanups.push(() => s.cleanup());
    const volume = mountVolume(s, 300);
    cleanups.push(() => volume.unmount());

    let tme = await startOn(volume.dataDir);
    for (let i = 0; i < 5; i++) expect((await create(tme, s, `ro_${i}`)).status).toBe(201);
    await until("the tasks to run", async () => executions(s.evidence).length >= 5, 60_000);
    expect(await tme.stop()).toBe(0);

    volume.readOnly(true);
    const refused = spawnSync(process.execPath, [CLI, "start"], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: "ERROR", TME_DATA_DIR: volume.dataDir, PORT: "0" },
      timeout: 60_000,
    });
    const stderr = refused.stderr.toString().trim();
    expect(refused.status).toBe(1);
    expect(stderr.split("\n")).toHaveLength(1);
    expect(stderr).toContain(volume.dataDir);
    expect(stderr).toContain("read-only file system");

    volume.readOnly(false);
    await sleep(100);
    tme = await startOn(volume.dataDir);
    const integrity = await checkIntegrity(volume.dataDir);
    expect(integrity.problems).toEqual([]);
    expect(integrity.tasks).toBe(5);
    const health = await fetch(`${tme.url}/health`);
    expect(health.status).toBe(200);
    expect(await tme.stop()).toBe(0);
    console.log(
      `[faults] read-only data directory: refused with "${stderr}"; started on the same data afterwards`,
    );
  }, 300_000);
});
