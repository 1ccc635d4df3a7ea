import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../helpers/test-app.js";
import { REPO_ROOT } from "../helpers/tme-process.js";

/** The ```bash blocks of the README's Schedules section, in order. */
function schedulesBlocks(): string[] {
  const markdown = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  const start = markdown.indexOf("\n## Schedules\n");
  if (start < 0) throw new Error('README.md has no "## Schedules" section');
  const rest = markdown.slice(start + "\n## Schedules\n".length);
  const end = rest.search(/\n## /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

let t: TestApp;
let workDir: string;
beforeAll(async () => {
  t = await createTestApp();
  workDir = mkdtempSync(path.join(os.tmpdir(), "tme-readme-schedules-"));
});
afterAll(async () => {
  await t.close();
  rmSync(workDir, { recursive: true, force: true });
});

describe("README: Schedules", () => {
  it("runs every example in order against TME: each request is 2xx, and they do what they say", async () => {
    const blocks = schedulesBlocks();
    expect(blocks.join("\n")).toContain("/trigger");
    const script = [
      "set -euo pipefail",
      `curl() { command curl -w '%{stderr}HTTP_STATUS %{http_code}\\n' "$@"; }`,
      ...blocks,
      `echo "::done" >&2`,
    ].join("\n");
    const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn("bash", ["-c", script], {
          cwd: workDir,
          env: { PATH: process.env.PATH ?? "", HOME: workDir, TME_URL: t.url, TME_KEY: t.adminKey },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (c: Buffer) => {
          stdout += c.toString();
        });
        child.stderr.on("data", (c: Buffer) => {
          stderr += c.toString();
        });
        child.once("error", reject);
        child.once("close", (status) => resolve({ status, stdout, stderr }));
      },
    );
    const report = `exit ${run.status}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
    expect(run.status, report).toBe(0);
    expect(run.stderr, report).toContain("::done");
    const statuses = [...run.stderr.matchAll(/^HTTP_STATUS (\d+)$/gm)].map((m) => Number(m[1]));
    expect(statuses, report).toEqual([201, 201, 200, 200, 200, 200, 200, 201, 200, 204]);

    const id = /sch_[0-9a-f]{32}/.exec(run.stdout)?.[0];
    expect(id, report).toBeDefined();
    const tasks = await t.app.db.rows("SELECT id FROM tasks WHERE schedule_id = $1", [id]);
    expect(tasks).toHaveLength(1);
    expect((await t.request("GET", `/schedule/${id}`)).status).toBe(404);
  });
});
