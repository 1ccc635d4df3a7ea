import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { dashboardSourceHash, SOURCE_HASH_FILE } from "./source-hash.js";

const root = fileURLToPath(new URL(".", import.meta.url));

/** Built into dist/ (not committed; build.ts builds it on demand): npm start serves these files, nothing is fetched at run time. */
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
      // build.ts compares this with the sources to tell whether dist/ must be built again.
      name: "tme-source-hash",
      closeBundle() {
        writeFileSync(path.join(root, SOURCE_HASH_FILE), `${dashboardSourceHash(root)}\n`);
      },
    },
  ],
});
