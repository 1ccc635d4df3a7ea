import { defineConfig } from "vitest/config";

/**
 * npm run test:faults: TME under the faults production meets (kill -9, a lost database, a cut
 * network, signals), judged by evidence from outside TME. One file at a time: each starts and
 * kills real processes, and timing-sensitive faults must not share the CPU with each other.
 */
export default defineConfig({
  test: {
    include: ["test/faults/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    reporters: process.env.VITEST_JSON_REPORT
      ? ["default", ["json", { outputFile: process.env.VITEST_JSON_REPORT }]]
      : ["default"],
  },
});
