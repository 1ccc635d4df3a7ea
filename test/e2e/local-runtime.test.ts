import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { isRunning, processesIn } from "../../functions/local/processes.js";
import { CLI, REPO_ROOT, runCli, startTme, type TmeProcess } from "../helpers/tme-process.js";

const dirs: string[] = [];
const running: TmeProcess[] = [];
afterAll(async () => {
  for (const p of running) await p.kill9();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** The embedded server's URL, from the files TME keeps in its data directory. */
function embeddedUrl(dataDir: string, database = "tme"): string {
  const password = readFileSync(path.join(dataDir, "pg-password"), "utf8").trim();
  const port = readFileSync(path.join(dataDir, "pg", "postmaster.pid"), "utf8")
    .split("\n")[3]!
    .trim();
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

describe("npm start on the embedded default", () => {
  it("serves /health, prints the database and a first admin key saved with mode 600, and stops on SIGTERM", async () => {
    const dataDir = tempDir("tme-e2e-data-");
    const tme = await startTme({ TME_DATA_DIR: dataDir });
    running.push(tme);
    const health = await fetch(`${tme.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", database: "ok" });
    expect(tme.output()).toMatch(
      /database: embedded PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:\d+\/tme/,
    );
    expect(tme.output()).not.toContain(readFileSync(path.join(dataDir, "pg-password"), "utf8").trim());
    expect(tme.adminKey).toMatch(/^tme_[\w-]{43}$/);
    expect(readFileSync(path.join(dataDir, "admin-key"), "utf8").trim()).toBe(tme.adminKey);
    expect(statSync(path.join(dataDir, "admin-key")).mode & 0o777).toBe(0o600);

    // The key works and /openapi.json is public.
    const spec = await fetch(`${tme.url}/openapi.json`);
    expect(spec.status).toBe(200);

    expect(await tme.stop()).toBe(0);
    // The embedded server stopped with TME: its pid file is gone.
    expect(() => statSync(path.join(dataDir, "pg", "postmaster.pid"))).toThrow();

    // A second start reuses the database and prints no new key.
    const again = await startTme({ TME_DATA_DIR: dataDir });
    running.push(again);
    expect(again.adminKey).toBeUndefined();
    const res = await fetch(`${again.url}/health`);
    expect(res.status).toBe(200);
    expect(await again.stop()).toBe(0);
  });

  it("keeps every committed row through kill -9 of TME and of its database, and restarts cleanly", async () => {
    const dataDir = tempDir("tme-e2e-crash-");
    const first = await startTme({ TME_DATA_DIR: dataDir });
    running.push(first);
    const url = embeddedUrl(dataDir);
    const client = new pg.Client({ connectionString: url });
    client.on("error", () => {});
    await client.connect();
    await client.query("CREATE TABLE crash_probe (id integer PRIMARY KEY)");
    const committed: number[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 1; writing; i++) {
        try {
          await client.query("INSERT INTO crash_probe (id) VALUES ($1)", [i]);
          committed.push(i);
        } catch {
          return;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    // Crash everything mid-write: TME's process group and the postmaster it started.
    const postmasterPid = Number(
      readFileSync(path.join(dataDir, "pg", "postmaster.pid"), "utf8").split("\n")[0],
    );
    await first.kill9();
    process.kill(postmasterPid, "SIGKILL");
    writing = false;
    await writer;
    await client.end().catch(() => {});
    expect(committed.length).toBeGreaterThan(10);

    const second = await startTme({ TME_DATA_DIR: dataDir });
    running.push(second);
    const check = new pg.Client({ connectionString: embeddedUrl(dataDir) });
    await check.connect();
    const { rows } = await check.query<{ id: number }>("SELECT id FROM crash_probe ORDER BY id");
    await check.end();
    const stored = new Set(rows.map((r) => r.id));
    expect(committed.filter((id) => !stored.has(id))).toEqual([]);
    expect(await second.stop()).toBe(0);
  });

  it("shuts down a database server left behind by a killed TME and starts its own", async () => {
    const dataDir = tempDir("tme-e2e-leftover-");
    const first = await startTme({ TME_DATA_DIR: dataDir });
    running.push(first);
    const leftoverPid = Number(
      readFileSync(path.join(dataDir, "pg", "postmaster.pid"), "utf8").split("\n")[0],
    );
    await first.kill9();
    // The server sits in its own process group, so it survived.
    expect(isRunning(leftoverPid)).toBe(true);
    const second = await startTme({ TME_DATA_DIR: dataDir });
    running.push(second);
    expect(isRunning(leftoverPid)).toBe(false);
    expect((await fetch(`${second.url}/health`)).status).toBe(200);
    expect(await second.stop()).toBe(0);
  });
});

describe("a signal during start-up", () => {
  it("finishes starting, then stops cleanly: exit 0 and no database server left behind", async () => {
    const dataDir = tempDir("tme-e2e-early-");
    const child = spawn(process.execPath, [CLI, "start"], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: "INFO", TME_DATA_DIR: dataDir, PORT: "0" },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let errOut = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      errOut += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    // initdb is running: the slowest part of a first start.
    for (const deadline = Date.now() + 20_000; !out.includes("initialising") && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    process.kill(-child.pid!, "SIGTERM");
    expect(await exited, `${out}\nSTDERR\n${errOut}`).toBe(0);
    expect(out).toContain('"msg":"stopped"');
    expect(processesIn(path.join(dataDir, "pg"))).toEqual([]);
  });
});

describe("npm start with bad configuration", () => {
  function configWith(file: string, text: string): string {
    const dir = tempDir("tme-e2e-config-");
    cpSync(path.join(REPO_ROOT, "configurations"), dir, { recursive: true });
    writeFileSync(path.join(dir, file), text);
    return dir;
  }

  it.each([
    [
      "app_config.yaml",
      "LOG_LEVL: INFO\n",
      /app_config\.yaml: unknown key "LOG_LEVL"; allowed keys: .*LOG_LEVEL/,
    ],
    [
      "db_config.yaml",
      "embedded: sometimes\n",
      /db_config\.yaml: key "embedded" has value "sometimes": expected boolean/,
    ],
    [
      "task_plugins.yaml",
      "tasks:\n  x: {plugn: noop}\n",
      /task_plugins\.yaml: unknown key "tasks\.x\.plugn"; allowed keys: plugin, export, concurrency/,
    ],
    [
      "task_plugins.yaml",
      "tasks:\n  x: {plugin: nosuch}\n",
      /task_plugins\.yaml: tasks\."x": plugin module "nosuch" not found/,
    ],
  ])("%s with %j stops with one line naming file, key and what is allowed", async (file, text, pattern) => {
    const result = await runCli(["start"], {
      TME_CONFIG_DIR: configWith(file, text),
      TME_DATA_DIR: tempDir("tme-e2e-x-"),
    });
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(pattern);
  });

  it("an unreachable database server is one clear line, without the password", async () => {
    const result = await runCli(["start"], {
      DATABASE_URL: "postgres://tme:hunter2@127.0.0.1:1/tme",
      TME_DATA_DIR: tempDir("tme-e2e-x-"),
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toMatch(
      /cannot connect to PostgreSQL at postgres:\/\/tme:\*\*\*@127\.0\.0\.1:1\/tme/,
    );
    expect(result.stderr + result.stdout).not.toContain("hunter2");
  });
});

describe("tme keys create", () => {
  it("prints the key as the last line of stdout and stores only its hash", async () => {
    const dataDir = tempDir("tme-e2e-keys-");
    const result = await runCli(["keys", "create", "--name", "ci", "--scopes", "tasks:read,tasks:write"], {
      TME_DATA_DIR: dataDir,
    });
    expect(result.code, result.stderr).toBe(0);
    const key = result.stdout.trim().split("\n").at(-1)!;
    expect(key).toMatch(/^tme_[\w-]{43}$/);
    const tme = await startTme({ TME_DATA_DIR: dataDir });
    running.push(tme);
    const check = new pg.Client({ connectionString: embeddedUrl(dataDir) });
    await check.connect();
    const { rows } = await check.query("SELECT name, scopes, encode(key_hash, 'hex') AS hash FROM api_keys");
    await check.end();
    expect(rows).toHaveLength(1);
    expect(rows[0].scopes).toEqual(["tasks:read", "tasks:write"]);
    expect(JSON.stringify(rows)).not.toContain(key);
    await tme.stop();
  });

  it("works beside a running npm start on the same data directory, which keeps running", async () => {
    const dataDir = tempDir("tme-e2e-keys-live-");
    const tme = await startTme({ TME_DATA_DIR: dataDir });
    running.push(tme);
    const result = await runCli(["keys", "create", "--name", "reader", "--scopes", "tasks:read"], {
      TME_DATA_DIR: dataDir,
    });
    expect(result.code, result.stderr).toBe(0);
    const key = result.stdout.trim().split("\n").at(-1)!;
    const list = await fetch(`${tme.url}/tasks`, { headers: { authorization: `Bearer ${key}` } });
    expect(list.status).toBe(200);
    const write = await fetch(`${tme.url}/task/create`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "noop" }),
    });
    expect(write.status).toBe(403);
    expect((await fetch(`${tme.url}/health`)).status).toBe(200);
    expect(await tme.stop()).toBe(0);
  });

  it("refuses an unknown scope, naming the allowed ones", async () => {
    const result = await runCli(["keys", "create", "--name", "x", "--scopes", "tasks:admin"], {
      TME_DATA_DIR: tempDir("tme-e2e-x-"),
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      "tme: error: unknown scope tasks:admin; allowed: tasks:read, tasks:write, schedules:write, commands:run, events:write, metrics:read, admin",
    );
  });
});
