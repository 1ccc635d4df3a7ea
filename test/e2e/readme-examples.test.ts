import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../helpers/test-app.js";
import { REPO_ROOT } from "../helpers/tme-process.js";

/** The ```bash blocks of one README section, in order. */
function bashBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`README.md has no "${heading}" section`);
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(/\n## /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

function runBash(
  script: string,
  options: { cwd: string; env: Record<string, string> },
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", script], { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("error", reject);
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

let t: TestApp;
let workDir: string;
beforeAll(async () => {
  t = await createTestApp();
  workDir = mkdtempSync(path.join(os.tmpdir(), "tme-readme-"));
});
afterAll(async () => {
  await t.close();
  rmSync(workDir, { recursive: true, force: true });
});

describe("README: Task API", () => {
  const blocks = bashBlocks(readFileSync(path.join(REPO_ROOT, "README.md"), "utf8"), "## Task API");

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
    // One shell for all blocks (later ones use variables of earlier ones); curl reports each
    // response's status on stderr after a marker naming its block.
    const script = [
      "set -euo pipefail",
      `curl() { command curl -w '%{stderr}HTTP_STATUS %{http_code}\\n' "$@"; }`,
      ...blocks.flatMap((block, i) => [`echo "::block ${i}" >&2`, block]),
      `echo "::done" >&2`,
    ].join("\n");
    // Asynchronously: the API under test answers from this very process.
    const run = await runBash(script, {
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
