import { readdirSync, readFileSync } from "node:fs";

/**
 * Processes of the whole host whose command line contains `marker`, read from /proc: evidence
 * from outside TME and outside any sandbox (a pid printed inside a sandbox is its namespace's).
 */
export function hostProcessesWith(marker: string): Array<{ pid: number; uid: number; cmdline: string }> {
  const found: Array<{ pid: number; uid: number; cmdline: string }> = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      if (!cmdline.includes(marker)) continue;
      const status = readFileSync(`/proc/${name}/status`, "utf8");
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      found.push({ pid: Number(name), uid, cmdline });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}
