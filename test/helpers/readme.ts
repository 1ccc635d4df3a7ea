import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./tme-process.js";

/** One "## ..." section of a Markdown file of the repository (README.md or docs/...), up to the next one. */
export function readmeSection(heading: string, file = "README.md"): string {
  const markdown = readFileSync(path.join(REPO_ROOT, file), "utf8");
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`${file} has no "${heading}" section`);
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(/\n## /);
  return end < 0 ? rest : rest.slice(0, end);
}

/** The fenced code blocks of one documented section in a language, in order. */
export function readmeBlocks(heading: string, language = "bash", file = "README.md"): string[] {
  const fence = new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, "g");
  return [...readmeSection(heading, file).matchAll(fence)].map((m) => m[1]!);
}

/**
 * One shell script of README examples (later blocks use variables of earlier ones). curl reports
 * each response's status on stderr as "HTTP_STATUS n", after a "::block i" marker when asked;
 * "::done" on stderr means every block ran.
 */
export function curlExamplesScript(blocks: string[], options: { markBlocks?: boolean } = {}): string {
  return [
    "set -euo pipefail",
    `curl() { command curl -w '%{stderr}HTTP_STATUS %{http_code}\\n' "$@"; }`,
    ...(options.markBlocks ? blocks.flatMap((block, i) => [`echo "::block ${i}" >&2`, block]) : blocks),
    `echo "::done" >&2`,
  ].join("\n");
}

/** Runs a bash script asynchronously (the API under test may answer from this very process). */
export function runBash(
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
