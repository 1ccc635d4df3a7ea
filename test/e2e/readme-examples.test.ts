import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curlExamplesScript, readmeBlocks, runBash } from "../helpers/readme.js";
import { withTestApp } from "../helpers/test-app.js";

let workDir: string;
const t = withTestApp();
beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), "tme-readme-"));
});
afterAll(async () => {
  rmSync(workDir, { recursive: true, force: true });
});

describe("README: Task API", () => {
  const blocks = readmeBlocks("## Task API", "bash", "docs/task-api.md");

  it("has curl examples for create, get, list, cancel, restart, bulk action and task types", () => {
    const all = blocks.join("\n");
    for (const route of [
      "/task/create",
      '/task/$TASK_ID"',
      '/tasks"',
      "/cancel",
      "/restart",
      "/tasks/actions",
      "/task-types",
    ]) {
      expect(all).toContain(route);
    }
  });

  it("runs every example in order against a started TME: each exits 0 and every request is 2xx", async () => {
    const run = await runBash(curlExamplesScript(blocks, { markBlocks: true }), {
      cwd: workDir,
      env: { PATH: process.env.PATH ?? "", HOME: workDir, TME_URL: t.url, TME_KEY: t.adminKey },
    });
    const report = `exit ${run.status}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
    expect(run.status, report).toBe(0);
    expect(run.stderr, report).toContain("::done");

    const statusesByBlock = new Map<number, number[]>();
    let current = -1;
    for (const line of run.stderr.split("\n")) {
      const marker = /^::block (\d+)$/.exec(line);
      if (marker) current = Number(marker[1]);
      const status = /^HTTP_STATUS (\d+)$/.exec(line);
      if (status) statusesByBlock.set(current, [...(statusesByBlock.get(current) ?? []), Number(status[1])]);
    }
    blocks.forEach((block, i) => {
      const statuses = statusesByBlock.get(i) ?? [];
      expect(statuses.length, `block ${i} made no request:\n${block}`).toBeGreaterThan(0);
      for (const s of statuses) expect(s, `block ${i}:\n${block}\n${report}`).toBeGreaterThanOrEqual(200);
      for (const s of statuses) expect(s, `block ${i}:\n${block}\n${report}`).toBeLessThan(300);
    });
    expect(run.stdout).toMatch(/tsk_[0-9a-f]{32}/);
  });
});
