import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Fault tests kill and freeze processes for minutes: npm run test:faults runs them.
    exclude: ["test/faults/**", "**/node_modules/**"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // Files run in parallel, each on its own database copied from a migrated template.
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    // CI asks for a machine-readable summary beside the usual output.
    reporters: process.env.VITEST_JSON_REPORT
      ? ["default", ["json", { outputFile: process.env.VITEST_JSON_REPORT }]]
      : ["default"],
  },
});
