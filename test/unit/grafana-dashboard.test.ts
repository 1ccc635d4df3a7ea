import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TmeMetrics } from "../../functions/adapters/metrics/tme-metrics.js";

describe("docs/grafana-dashboard.json", () => {
  it("queries only metrics TME defines", async () => {
    const dashboard = JSON.parse(readFileSync("docs/grafana-dashboard.json", "utf8")) as {
      panels: Array<{ targets: Array<{ expr: string }> }>;
    };
    const metrics = new TmeMetrics(
      { maxTaskNames: 10, maxNamespaces: 10 },
      {
        snapshot: async () => ({
          tasks: [],
          outboxBacklog: 0,
          outboxOldestAgeSeconds: 0,
          schedulesLate: 0,
          scheduleLatenessSeconds: 0,
        }),
        pool: () => ({ total: 0, idle: 0, waiting: 0, max: 1 }),
        slots: () => ({ busy: 0, free: 1 }),
        onSnapshotError: () => {},
      },
    );
    const defined = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    const used = new Set(
      dashboard.panels.flatMap((p) =>
        p.targets.flatMap((t) =>
          [...t.expr.matchAll(/\b((?:tme|process|nodejs)_[a-z0-9_]+)\{/g)].map((m) =>
            m[1]!.replace(/_(bucket|count|sum)$/, ""),
          ),
        ),
      ),
    );
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !defined.has(name))).toEqual([]);
  });
});
