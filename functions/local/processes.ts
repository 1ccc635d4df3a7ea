import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";

/** Small facts about processes, from signals and /proc (Linux); used to find leftovers of a crash. */

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Alive and not a zombie: a killed process whose parent died may stay unreaped for a while. */
export function isRunning(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return isAlive(pid);
  }
}

/** Live processes whose working directory is dir (PostgreSQL processes run in their data directory). */
export function processesIn(dir: string): number[] {
  if (!existsSync("/proc")) return [];
  const target = path.resolve(dir);
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/cwd`) === target && isRunning(pid);
      } catch {
        return false;
      }
    });
}

export async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !condition() && Date.now() < deadline; )
    await new Promise((r) => setTimeout(r, 100));
}

export function processName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
  } catch {
    return "";
  }
}
