import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { dashboardBuildIsCurrent, ensureDashboardBuilt } from "../../functions/dashboard/build.js";

const ROOT = path.resolve("functions/dashboard");

describe("the dashboard build", () => {
  it("is built from the sources as they are now, and not built again while they stay so", async () => {
    await ensureDashboardBuilt(ROOT);
    expect(dashboardBuildIsCurrent(ROOT)).toBe(true);
    expect(await ensureDashboardBuilt(ROOT)).toBe(false);
  });

  it("has every asset its page refers to", async () => {
    await ensureDashboardBuilt(ROOT);
    const html = readFileSync(path.join(ROOT, "dist/index.html"), "utf8");
    const assets = [...html.matchAll(/(?:src|href)="\/dashboard\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) expect(existsSync(path.join(ROOT, "dist", asset)), asset).toBe(true);
  });
});
