import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

/** Where the build records the hash of the sources it was built from (not served). */
export const SOURCE_HASH_FILE = "dist/source-hash.txt";

/** The bundled libraries: a new version changes the build as much as a source edit. */
const BUNDLED_PACKAGES = ["preact", "uplot"];

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(full) : [full];
  });
}

/**
 * SHA-256 over every file the dashboard is built from (index.html, vite.config.ts, src/) and the
 * versions of the bundled libraries, so a check can tell a committed dist/ that is older than its
 * sources without building.
 */
export function dashboardSourceHash(root: string): string {
  const hash = createHash("sha256");
  const files = [
    path.join(root, "index.html"),
    path.join(root, "vite.config.ts"),
    ...filesUnder(path.join(root, "src")),
  ]
    .map((file) => path.relative(root, file).split(path.sep).join("/"))
    .sort();
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(path.join(root, file)));
    hash.update("\0");
  }
  const manifest = JSON.parse(readFileSync(path.join(root, "../../package.json"), "utf8")) as {
    devDependencies?: Record<string, string>;
    dependencies?: Record<string, string>;
  };
  for (const name of BUNDLED_PACKAGES) {
    hash.update(`${name}@${manifest.devDependencies?.[name] ?? manifest.dependencies?.[name] ?? "?"}\0`);
  }
  return hash.digest("hex");
}
