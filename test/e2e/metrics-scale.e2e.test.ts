import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type InProcessTme,
  parsePrometheus,
  sampleSum,
  startInProcessTme,
} from "../helpers/local-runtime.js";

let tme: InProcessTme;
const TASKS = 100_000;

beforeAll(async () => {
  tme = await startInProcessTme({
    app: (app) => ({ ...app, metrics: { ...app.metrics, gauge_cache_ms: 0 } }),
  });
  // One statement: a realistic mix of finished history and live work. The live tasks are due
  // tomorrow (and the running ones hold day-long leases), so the runtime's workers and reaper
  // leave them as they are while the scrape is timed.
  await tme.database.db.query(
    `INSERT INTO tasks (id, namespace, name, handler, status, timeout_seconds, run_at, finished_at,
                        lease_owner, lease_expires_at)
     SELECT 'tsk_scale_' || g, 'ns_' || (g % 5), 'scale_' || (g % 40), 'noop', s.status, 60,
            now() + interval '1 day',
            CASE WHEN s.status IN ('succeeded', 'failed', 'cancelled') THEN now() END,
            CASE WHEN s.status = 'running' THEN 'scale-test' END,
            CASE WHEN s.status = 'running' THEN now() + interval '1 day' END
       FROM generate_series(1, $1::int) AS g,
            LATERAL (SELECT ((ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'failed', 'cancelled',
                                    'queued', 'retrying', 'paused', 'running'])[1 + g % 10])::task_status AS status) s`,
    [TASKS],
  );
  // What autovacuum does soon after a bulk load: statistics and the visibility map, so the
  // grouped count is answered from the index.
  await tme.database.db.query("VACUUM ANALYZE tasks");
}, 120_000);

afterAll(async () => {
  await tme?.close();
});

describe("GET /metrics on a runtime holding 100,000 tasks", () => {
  it("answers with the right gauges; its time is printed", async () => {
    const times: number[] = [];
    let text = "";
    for (let i = 0; i < 7; i++) {
      const started = performance.now();
      const response = await tme.api("GET", "/metrics");
      text = response.text;
      times.push(performance.now() - started);
      expect(response.status).toBe(200);
    }
    const samples = parsePrometheus(text);
    expect(sampleSum(samples, "tme_tasks", { status: "queued" })).toBe(TASKS / 10);
    expect(sampleSum(samples, "tme_tasks", { status: "running" })).toBe(TASKS / 10);
    expect(sampleSum(samples, "tme_tasks")).toBe((TASKS * 4) / 10);
    expect(
      sampleSum(samples, "tme_tasks", { namespace: "ns_1", task_name: "scale_1", status: "retrying" }),
    ).toBe(0);

    const { rows } = await tme.database.db.query<{ "QUERY PLAN": string }>(
      `EXPLAIN (ANALYZE, BUFFERS) SELECT namespace, name, status, count(*) FROM tasks
       WHERE status IN ('queued', 'running', 'retrying', 'paused') GROUP BY namespace, name, status`,
    );
    const sorted = [...times].sort((a, b) => a - b);
    console.log(
      `[metrics scale] ${TASKS} tasks: GET /metrics in ${sorted.map((t) => t.toFixed(1)).join(", ")} ms ` +
        `(median ${sorted[3]!.toFixed(1)} ms, first ${times[0]!.toFixed(1)} ms)\n` +
        rows.map((r) => `  ${r["QUERY PLAN"]}`).join("\n"),
    );
  });
});
