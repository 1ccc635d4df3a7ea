import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curlExamplesScript, readmeBlocks, runBash } from "../helpers/readme.js";
import { withTestApp } from "../helpers/test-app.js";

let workDir: string;
const t = withTestApp();
beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), "tme-readme-schedules-"));
});
afterAll(async () => {
  rmSync(workDir, { recursive: true, force: true });
});

describe("README: Schedules", () => {
  it("runs every example in order against TME: each request is 2xx, and they do what they say", async () => {
    const blocks = readmeBlocks("## Schedules", "bash", "docs/schedules.md");
    expect(blocks.join("\n")).toContain("/trigger");
    const run = await runBash(curlExamplesScript(blocks), {
      cwd: workDir,
      env: { PATH: process.env.PATH ?? "", HOME: workDir, TME_URL: t.url, TME_KEY: t.adminKey },
    });
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
