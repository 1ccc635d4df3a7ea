import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { PEERS, runBench } from "../bench/harness.js";
import { writeResults } from "../bench/main.js";
import type { BenchResult } from "../bench/report.js";

// The benchmark harness on tiny numbers: every system runs and yields a figure, the
// comparisons are computed and the files are written. Structure only: the figures of a run
// this small (and on a machine running other tests) say nothing, so none is asserted.
describe("npm run bench, on tiny numbers", () => {
  const out = mkdtempSync(path.join(os.tmpdir(), "tme-bench-test-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("measures every system, compares TME with each baseline and writes JSON, SVG and the table", async () => {
    const steps: string[] = [];
    const result = await runBench({
      tasks: 50,
      repeats: 1,
      concurrencies: [24],
      pickupTasks: 20,
      pickupRate: 50,
      apiSeconds: 2,
      apiConnections: 50,
      drainCapSeconds: 30,
      listingBacklog: 200,
      adminUrl: inject("adminDatabaseUrl"),
      onProgress: (fraction, step) => {
        expect(fraction).toBeGreaterThanOrEqual(0);
        expect(fraction).toBeLessThanOrEqual(1);
        steps.push(step);
      },
    });

    for (const system of ["tme", ...PEERS]) {
      const drain = result.runs.drain.filter((r) => r.system === system && r.concurrency === 24);
      expect(drain, system).toHaveLength(1);
      expect(drain[0]!.finished, system).toBeGreaterThan(0);
      expect(drain[0]!.tasksPerSecond, system).toBeGreaterThan(0);
    }
    expect(result.runs.pickup.map((r) => [r.system, r.n])).toEqual([
      ["tme", 20],
      ["graphile-worker-tuned", 20],
    ]);
    expect(result.runs.api.map((r) => `${r.system} ${r.route}`).sort()).toEqual([
      "bare create",
      "bare get",
      "tme create",
      "tme get",
    ]);
    for (const r of result.runs.api) expect(r.requests, `${r.system} ${r.route}`).toBeGreaterThan(0);
    expect(result.runs.idleRss[0]!.bytes).toBeGreaterThan(0);
    expect(result.runs.listing.map((r) => [r.backlog, r.n])).toEqual([[200, 50]]);
    expect(result.runs.storage[0]!.bytesPerTask).toBeGreaterThan(0);

    // Every comparison with a baseline has its ratio; the goals are judged.
    for (const c of result.comparisons) {
      if (c.baselineName) expect(c.ratio, c.id).toBeGreaterThan(0);
      if (c.goal) expect(typeof c.met, c.id).toBe("boolean");
    }
    expect(result.comparisons.map((c) => c.id)).toEqual(
      expect.arrayContaining([
        "drain.c24.graphile-worker-tuned",
        "pickup.p50",
        "api.create.rps",
        "api.get.rps",
        "idle.rss",
        "api.list.p50",
      ]),
    );
    expect(steps.at(-1)).toMatch(/listing tme/);

    const files = await writeResults(result, out, "test", "npm run bench -- (test)");
    const written = JSON.parse(readFileSync(files.json, "utf8")) as BenchResult;
    expect(written.comparisons).toEqual(result.comparisons);
    expect(readFileSync(files.svg, "utf8")).toMatch(/^<svg[\s\S]*<\/svg>$/);
    expect(readFileSync(files.md, "utf8")).toContain("| drain c=24 vs graphile-worker tuned |");
  }, 300_000);
});
