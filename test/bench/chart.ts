import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { BenchResult } from "./report.js";

const SYSTEM_LABELS: Record<string, string> = {
  tme: "TME",
  "graphile-worker-tuned": "graphile-worker tuned",
  "graphile-worker-default": "graphile-worker defaults",
  "pg-boss": "pg-boss",
};

/**
 * Two panels, drawn by Vega-Lite and rendered to SVG headless (no canvas, no browser):
 * drain throughput of every system (medians, log scale, one bar per concurrency) and TME's
 * ratios against their baselines with the goal of each marked.
 */
export async function chartSvg(result: BenchResult): Promise<string> {
  // Each drain comparison carries one peer's median; TME's is on every one (taken once per concurrency).
  const drain: Array<{ system: string; concurrency: string; tasksPerSecond: number | null }> = [];
  for (const c of result.comparisons) {
    const match = /^drain\.c(\d+)\.(.+)$/.exec(c.id);
    if (!match) continue;
    const concurrency = `c=${match[1]}`;
    drain.push({ system: SYSTEM_LABELS[match[2]!] ?? match[2]!, concurrency, tasksPerSecond: c.baseline });
    if (match[2] === "graphile-worker-tuned")
      drain.push({ system: "TME", concurrency, tasksPerSecond: c.tme });
  }
  const ratios = result.comparisons
    .filter((c) => c.ratio !== null && c.ratio > 0 && c.goal?.on === "ratio")
    .map((c) => ({
      label: `${c.label}${c.baselineName && !c.label.includes(" vs ") ? ` vs ${c.baselineName}` : ""}`,
      ratio: c.ratio,
      goal: c.goal?.target ?? null,
      met: c.met ? "goal met" : "goal not met",
    }));
  // Log scales from the decade below the smallest value (a bar cannot start at zero on one).
  const floorDecade = (values: Array<number | null>) => {
    const positive = values.filter((v): v is number => v !== null && v > 0);
    return positive.length ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : 1;
  };
  const drainMin = floorDecade(drain.map((d) => d.tasksPerSecond));
  const ratioMin = Math.min(0.1, floorDecade(ratios.map((r) => r.ratio)));
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: { text: "TME benchmark (medians)", subtitle: `${result.startedAt.slice(0, 16)} UTC` },
    config: { font: "sans-serif", view: { stroke: null } },
    vconcat: [
      {
        title: "Queue drain, no-op tasks (tasks/s, log scale)",
        width: 480,
        height: { step: 14 },
        data: { values: drain.filter((d) => d.tasksPerSecond !== null && d.tasksPerSecond > 0) },
        mark: { type: "bar" },
        encoding: {
          y: {
            field: "system",
            type: "nominal",
            title: null,
            sort: Object.values(SYSTEM_LABELS),
            axis: { labelLimit: 300 },
          },
          yOffset: { field: "concurrency" },
          x: {
            field: "tasksPerSecond",
            type: "quantitative",
            scale: { type: "log", domainMin: drainMin },
            title: "tasks/s",
          },
          x2: { datum: drainMin },
          color: { field: "concurrency", type: "nominal", title: "concurrency" },
          tooltip: [{ field: "tasksPerSecond", format: ",.0f" }],
        },
      },
      {
        title: "TME over baseline (ratio of medians, log scale; | = goal)",
        width: 480,
        height: { step: 18 },
        data: { values: ratios },
        layer: [
          {
            mark: { type: "bar" },
            encoding: {
              y: { field: "label", type: "nominal", title: null, sort: null, axis: { labelLimit: 300 } },
              x: {
                field: "ratio",
                type: "quantitative",
                scale: { type: "log", domainMin: ratioMin },
                title: "TME / baseline",
              },
              x2: { datum: ratioMin },
              color: {
                field: "met",
                type: "nominal",
                title: null,
                scale: { domain: ["goal met", "goal not met"], range: ["#2e7d32", "#c62828"] },
              },
            },
          },
          {
            mark: { type: "tick", color: "black", thickness: 2 },
            encoding: {
              y: { field: "label", type: "nominal", sort: null },
              x: { field: "goal", type: "quantitative" },
            },
          },
          {
            mark: { type: "text", align: "left", dx: 4 },
            encoding: {
              y: { field: "label", type: "nominal", sort: null },
              x: { field: "ratio", type: "quantitative" },
              text: { field: "ratio", type: "quantitative", format: ".2f" },
            },
          },
        ],
        resolve: { scale: { x: "shared" } },
      },
    ],
    resolve: { scale: { color: "independent" } },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
