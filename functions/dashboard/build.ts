import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { dashboardSourceHash, SOURCE_HASH_FILE } from "./source-hash.js";

const ROOT = fileURLToPath(new URL(".", import.meta.url));

/** Whether dist/ holds a build of the sources as they are now (its recorded hash matches). */
export function dashboardBuildIsCurrent(root: string = ROOT): boolean {
  const recorded = path.join(root, SOURCE_HASH_FILE);
  return existsSync(recorded) && readFileSync(recorded, "utf8").trim() === dashboardSourceHash(root);
}

/**
 * Builds the dashboard into dist/ unless dist/ is already a build of the current sources. dist/ is
 * build output, not committed: `npm start`, `cdk synth` and the tests call this first, so a fresh
 * clone (after `npm ci`) serves the page, and an edited src/ is served as edited. Vite runs in this
 * process, offline, in well under a second. Answers whether it built.
 */
export async function ensureDashboardBuilt(root: string = ROOT): Promise<boolean> {
  if (dashboardBuildIsCurrent(root)) return false;
  // Vite is a dev dependency: imported only when a build is due, never by the running server.
  const { build } = await import("vite");
  await build({ configFile: path.join(root, "vite.config.ts"), logLevel: "warn" });
  return true;
}
