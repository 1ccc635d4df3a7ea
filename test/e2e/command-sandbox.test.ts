import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { hostProcessesWith } from "../helpers/host-processes.js";
import { REPO_ROOT, startTme, type TmeProcess } from "../helpers/tme-process.js";
import { waitFor } from "../helpers/wait.js";

// Finding 1 (critical): a key with tasks:write ran `cat <data dir>/pg-password` and
// `tr "\0" "\n" </proc/<tme pid>/environ`, read the admin key, the PostgreSQL password and the
// encryption key, and could edit plugins/*.ts. The same commands, against `tme start` with
// shell.sandbox required (bubblewrap), and with the fallbacks auto takes without it.

const dirs: string[] = [];
const databases: TestDatabase[] = [];
const running: TmeProcess[] = [];
afterAll(async () => {
  for (const p of running) await p.kill9();
  for (const d of databases) await d.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

// Each test starts a TME (one on the embedded database) and runs a dozen commands: minutes on a
// busy machine, not the 30 s default.
const BOOTSTRAP_KEY = `tme_sandbox_test_bootstrap_${"k".repeat(24)}`;
const PLANTED = "planted-secret-in-tme-environment-7f3a";

async function call(tme: TmeProcess, method: string, route: string, body?: unknown) {
  const response = await fetch(`${tme.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any };
}

async function healthOf(tme: TmeProcess): Promise<{ command_isolation: { kind: string; detail: string } }> {
  return (await (await fetch(`${tme.url}/health`)).json()) as never;
}

/** Runs a command as a task and returns how it ended and what it printed. */
async function attack(tme: TmeProcess, command: string) {
  const created = await call(tme, "POST", "/task/create", { name: "attack", command, max_attempts: 1 });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const task = await waitFor(
    `task ${command} to end`,
    async () => {
      const t = (await call(tme, "GET", `/task/${created.body.id}`)).body;
      return ["succeeded", "failed", "timed_out", "cancelled"].includes(t.status) ? t : undefined;
    },
    30_000,
  );
  const [run] = (await call(tme, "GET", `/task/${created.body.id}/runs`)).body;
  // The evidence, in the test output: what each command got.
  console.log(
    `[sandbox] $ ${command} -> ${task.status}: ${JSON.stringify((run?.output_tail ?? "").slice(0, 160))}`,
  );
  return {
    status: task.status as string,
    exitCode: run?.exit_code as number | null,
    output: (run?.output_tail ?? "") as string,
  };
}

async function startWith(env: Record<string, string>, options: { embedded?: boolean } = {}) {
  const dataDir = tempDir("tme-sandbox-data-");
  const databaseEnv: Record<string, string> = {};
  if (!options.embedded) {
    const database = await createTestDatabase();
    databases.push(database);
    databaseEnv.DATABASE_URL = database.url;
  }
  const tme = await startTme({
    TME_DATA_DIR: dataDir,
    TME_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY,
    TME_PLANTED_SECRET: PLANTED,
    LOG_LEVEL: "INFO",
    ...databaseEnv,
    ...env,
  });
  running.push(tme);
  return { tme, dataDir };
}

describe("shell.sandbox required (bubblewrap), on the embedded database", () => {
  it("the commands of finding 1 reach none of TME's secrets, code or processes, and run as nobody inside and out", async () => {
    const { tme, dataDir } = await startWith({ SHELL_SANDBOX: "required" }, { embedded: true });
    const pid = tme.child.pid!;
    const health = await healthOf(tme);
    expect(health.command_isolation).toMatchObject({ kind: "sandbox" });
    expect(health.command_isolation.detail).toContain("uid 65534 outside too");
    const secrets = ["pg-password", "admin-key", "encryption-key"]
      .filter((f) => existsSync(path.join(dataDir, f)))
      .map((f) => readFileSync(path.join(dataDir, f), "utf8").trim());
    expect(secrets.length).toBeGreaterThanOrEqual(1);
    secrets.push(BOOTSTRAP_KEY, PLANTED);

    const outputs: string[] = [];
    for (const command of [
      `cat ${dataDir}/pg-password`,
      `cat ${dataDir}/admin-key`,
      `ls ${dataDir}`,
      `cat /proc/${pid}/environ`,
      `ls ${REPO_ROOT}/plugins`,
      `cat ${REPO_ROOT}/configurations/db_config.yaml`,
      `touch ${REPO_ROOT}/plugins/pwned.ts`,
    ]) {
      const result = await attack(tme, command);
      expect(result.status, command).toBe("failed");
      expect(result.output, command).toContain("No such file or directory");
      outputs.push(result.output);
    }
    expect(existsSync(path.join(REPO_ROOT, "plugins", "pwned.ts"))).toBe(false);

    // Every process it can see is its own: /proc is its pid namespace's.
    const environs = await attack(
      tme,
      `sh -c 'tr "\\0" "\\n" < /proc/1/environ; cat /proc/[0-9]*/environ; ls /proc'`,
    );
    outputs.push(environs.output);
    const pids = environs.output.split("\n").filter((l) => /^\d+$/.test(l));
    expect(pids.length).toBeLessThan(6);
    expect(pids).not.toContain(String(pid));

    const who = await attack(tme, "id");
    expect(who.output.trim()).toBe("uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)");
    const write = await attack(tme, "sh -c 'touch /usr/x /etc/x; echo ok > /tmp/x && cat /tmp/x && pwd'");
    expect(write.output).toContain("/usr/x': Read-only file system");
    expect(write.output).toContain("/etc/x': Read-only file system");
    expect(write.output).toContain("ok\n/tmp\n");
    outputs.push(write.output);

    // The embedded PostgreSQL answers on loopback (network allow), but wants the password the
    // sandbox cannot read.
    if (existsSync("/usr/bin/psql")) {
      const port = readFileSync(path.join(dataDir, "pg", "postmaster.pid"), "utf8")
        .split("\n")[3]!
        .trim();
      const psql = await attack(tme, `psql -w -h 127.0.0.1 -p ${port} -U postgres -c "select 1"`);
      expect(psql.status).toBe("failed");
      expect(psql.output).toMatch(/password|authentication/);
      outputs.push(psql.output);
    }
    for (const secret of secrets) expect(outputs.join("\n")).not.toContain(secret);

    // From outside: the sandbox and everything in it run as uid 65534 on the host, and a
    // cancel ends all of it, the setsid child included.
    const marker = `${400 + Math.floor(Math.random() * 500)}.3`;
    const long = await call(tme, "POST", "/task/create", {
      name: "long",
      command: `sh -c 'setsid sleep ${marker} & sleep ${marker}'`,
    });
    const inside = await waitFor(
      "the sandboxed processes to appear",
      async () => {
        const found = hostProcessesWith(`sleep ${marker}`);
        return found.filter((p) => p.cmdline.startsWith("sleep")).length === 2 ? found : undefined;
      },
      15_000,
    );
    expect(inside.some((p) => p.cmdline.startsWith("/usr/bin/bwrap"))).toBe(true);
    expect(inside.map((p) => p.uid)).toEqual(inside.map(() => 65534));
    console.log(
      `[sandbox] host view of a sandboxed command: ${inside.map((p) => `${p.pid} uid ${p.uid} ${p.cmdline.slice(0, 40)}`).join(" | ")}`,
    );
    expect((await call(tme, "POST", `/task/${long.body.id}/cancel`)).status).toBe(200);
    await waitFor(
      "every sandboxed process to be gone",
      async () => hostProcessesWith(`sleep ${marker}`).length === 0 || undefined,
      10_000,
    );

    // kill -9 of TME: the supervisor takes the whole sandbox down at once.
    const marker2 = `${400 + Math.floor(Math.random() * 500)}.4`;
    await call(tme, "POST", "/task/create", {
      name: "orphan",
      command: `sh -c 'setsid sleep ${marker2} & sleep ${marker2}'`,
    });
    await waitFor(
      "the second command to start",
      async () =>
        hostProcessesWith(`sleep ${marker2}`).filter((p) => p.cmdline.startsWith("sleep")).length === 2 ||
        undefined,
      15_000,
    );
    await tme.kill9();
    await waitFor(
      "the sandbox to die with TME",
      async () => hostProcessesWith(`sleep ${marker2}`).length === 0 || undefined,
      10_000,
    );
  }, 180_000);
});

describe("without a working bubblewrap (simulated with shell.bwrap_path pointing nowhere)", () => {
  it("required refuses to start, in one line that says why and what to do", async () => {
    const dataDir = tempDir("tme-sandbox-data-");
    const database = await createTestDatabase();
    databases.push(database);
    const failed = await startTme({
      TME_DATA_DIR: dataDir,
      DATABASE_URL: database.url,
      SHELL_SANDBOX: "required",
      SHELL_BWRAP_PATH: "/nonexistent/bwrap",
    }).catch((error: Error) => error.message);
    expect(failed).toContain("tme start exited with 1");
    expect(failed).toContain(
      "tme: shell.sandbox is required but bubblewrap cannot run commands here (/nonexistent/bwrap does not exist): install the bubblewrap package, set shell.bwrap_path (SHELL_BWRAP_PATH), or choose shell.sandbox auto or none\n",
    );
  }, 180_000);

  it("auto, as root, runs commands as uid 65534: TME's data directory and environment stay out of reach, and /health says so", async () => {
    const { tme, dataDir } = await startWith({
      SHELL_SANDBOX: "auto",
      SHELL_BWRAP_PATH: "/nonexistent/bwrap",
    });
    expect(tme.output()).toContain(
      "no sandbox (/nonexistent/bwrap does not exist): commands run as uid 65534",
    );
    const health = await healthOf(tme);
    expect(health.command_isolation).toMatchObject({ kind: "unprivileged_user" });
    expect((await attack(tme, "id -u")).output.trim()).toBe("65534");
    const key = await attack(tme, `cat ${dataDir}/admin-key`);
    expect(key).toMatchObject({ status: "failed" });
    expect(key.output).toContain("Permission denied");
    const environ = await attack(tme, `cat /proc/${tme.child.pid}/environ`);
    expect(environ.status).toBe("failed");
    expect(environ.output).toContain("Permission denied");
    expect(environ.output).not.toContain(PLANTED);
  }, 180_000);

  it("none runs commands as TME's own user, and says so at start and in /health", async () => {
    const { tme } = await startWith({ SHELL_SANDBOX: "none" });
    expect(tme.output()).toContain("shell.sandbox is none: commands run as TME's own user");
    const health = await healthOf(tme);
    expect(health.command_isolation).toMatchObject({ kind: "none" });
    expect((await attack(tme, "id -u")).output.trim()).toBe(String(process.getuid!()));
  }, 180_000);
});
