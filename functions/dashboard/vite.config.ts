import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { dashboardSourceHash, SOURCE_HASH_FILE } from "./source-hash.js";

const root = fileURLToPath(new URL(".", import.meta.url));

/** Built once and committed (dist/): npm start serves these files, nothing is fetched at run time. */
export default defineConfig({
  root,
  base: "/dashboard/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The polyfill would be an inline script, which the CSP refuses.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  plugins: [
    {
      // test/unit/dashboard-dist.test.ts compares this with the sources to catch a stale dist/.
      name: "tme-source-hash",
      closeBundle() {
        writeFileSync(path.join(root, SOURCE_HASH_FILE), `${dashboardSourceHash(root)}\n`);
      },
    },
  ],
});
