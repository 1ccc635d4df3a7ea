import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/** Built once and committed (dist/): npm start serves these files, nothing is fetched at run time. */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/dashboard/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The polyfill would be an inline script, which the CSP refuses.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
