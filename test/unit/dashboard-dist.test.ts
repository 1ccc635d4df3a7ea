import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { dashboardSourceHash, SOURCE_HASH_FILE } from "../../functions/dashboard/source-hash.js";

const ROOT = path.resolve("functions/dashboard");

describe("the committed dashboard build", () => {
  it("was built from the sources as they are now (else: npm run build:dashboard and commit dist/)", () => {
    const recorded = readFileSync(path.join(ROOT, SOURCE_HASH_FILE), "utf8").trim();
    expect(recorded, "functions/dashboard/dist is stale: run npm run build:dashboard").toBe(
      dashboardSourceHash(ROOT),
    );
  });

  it("has every asset its page refers to", () => {
    const html = readFileSync(path.join(ROOT, "dist/index.html"), "utf8");
    const assets = [...html.matchAll(/(?:src|href)="\/dashboard\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) expect(existsSync(path.join(ROOT, "dist", asset)), asset).toBe(true);
  });
});
