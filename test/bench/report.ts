export interface Runs {
  drain: Array<{
    repeat: number;
    system: string;
    concurrency: number;
    tasksPerSecond: number;
    finished: number;
    elapsedMs: number;
    capped: boolean;
  }>;
  pickup: Array<{ repeat: number; system: string; p50Ms: number; p95Ms: number; p99Ms: number; n: number }>;
  api: Array<{
    repeat: number;
    system: "tme" | "bare";
    route: "create" | "get";
    requestsPerSecond: number;
    p50Ms: number;
    p99Ms: number;
    requests: number;
  }>;
  idleRss: Array<{ repeat: number; bytes: number | null }>;
  /** GET /tasks?limit=50 with a backlog of `backlog` claimable tasks waiting for a busy slot. */
  listing: Array<{ repeat: number; backlog: number; p50Ms: number; p95Ms: number; n: number }>;
  storage: Array<{ repeat: number; bytesPerTask: number; tables: Record<string, number> }>;
}

export interface Goal {
  /** TME's figure over the baseline's (ratio), or TME's own figure (absolute). */
  on: "ratio" | "value";
  op: ">=" | "<=" | "<";
  target: number;
}

export interface Comparison {
  id: string;
  label: string;
  unit: string;
  tme: number | null;
  baseline: number | null;
  baselineName: string | null;
  /** TME's median over the baseline's median. */
  ratio: number | null;
  goal: Goal | null;
  met: boolean | null;
  /** Something the reader must know to read the figure (a drain that hit its time cap...). */
  note?: string;
}

export interface BenchResult {
  version: 1;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  machine: Record<string, unknown>;
  options: Record<string, unknown>;
  runs: Runs;
  comparisons: Comparison[];
}

export function median(values: number[]): number | null {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function entry(
  id: string,
  label: string,
  unit: string,
  tme: number | null,
  baseline: number | null,
  baselineName: string | null,
  goal: Goal | null,
  note?: string,
): Comparison {
  const ratio = tme !== null && baseline !== null && baseline !== 0 ? tme / baseline : null;
  const judged = goal?.on === "value" ? tme : ratio;
  const met =
    goal && judged !== null
      ? goal.op === ">="
        ? judged >= goal.target
        : goal.op === "<="
          ? judged <= goal.target
          : judged < goal.target
      : null;
  return { id, label, unit, tme, baseline, baselineName, ratio, goal, met, ...(note ? { note } : {}) };
}

const PEER_NAMES: Record<string, string> = {
  "graphile-worker-tuned": "graphile-worker tuned",
  "graphile-worker-default": "graphile-worker defaults",
  "pg-boss": "pg-boss",
};

/** Medians over the repeats, TME against each baseline, with the goals. */
export function compare(runs: Runs, concurrencies: number[]): Comparison[] {
  const out: Comparison[] = [];
  const drain = (system: string, c: number) =>
    median(runs.drain.filter((r) => r.system === system && r.concurrency === c).map((r) => r.tasksPerSecond));
  const capped = (system: string, c: number) =>
    runs.drain.some((r) => r.system === system && r.concurrency === c && r.capped);
  for (const c of concurrencies) {
    for (const peer of Object.keys(PEER_NAMES)) {
      const goal: Goal | null =
        peer === "graphile-worker-tuned" && c === 24 ? { on: "ratio", op: ">=", target: 1 } : null;
      const notes = [capped("tme", c) && "TME", capped(peer, c) && PEER_NAMES[peer]].filter(Boolean);
      out.push(
        entry(
          `drain.c${c}.${peer}`,
          `drain c=${c} vs ${PEER_NAMES[peer]}`,
          "tasks/s",
          drain("tme", c),
          drain(peer, c),
          PEER_NAMES[peer]!,
          goal,
          notes.length ? `${notes.join(" and ")} stopped at the time cap` : undefined,
        ),
      );
    }
  }
  const pickup = (system: string, key: "p50Ms" | "p95Ms" | "p99Ms") =>
    median(runs.pickup.filter((r) => r.system === system).map((r) => r[key]));
  for (const key of ["p50Ms", "p95Ms", "p99Ms"] as const) {
    const p = key.slice(0, 3);
    out.push(
      entry(
        `pickup.${p}`,
        `pickup ${p} (create to start)`,
        "ms",
        pickup("tme", key),
        pickup("graphile-worker-tuned", key),
        "graphile-worker tuned",
        key === "p50Ms" ? { on: "ratio", op: "<=", target: 1 } : null,
      ),
    );
  }
  const api = (system: string, route: string, key: "requestsPerSecond" | "p99Ms") =>
    median(runs.api.filter((r) => r.system === system && r.route === route).map((r) => r[key]));
  out.push(
    entry(
      "api.create.rps",
      "POST /task/create",
      "req/s",
      api("tme", "create", "requestsPerSecond"),
      api("bare", "create", "requestsPerSecond"),
      "bare INSERT",
      { on: "ratio", op: ">=", target: 0.5 },
    ),
    entry(
      "api.create.p99",
      "POST /task/create p99",
      "ms",
      api("tme", "create", "p99Ms"),
      api("bare", "create", "p99Ms"),
      "bare INSERT",
      { on: "ratio", op: "<=", target: 2 },
    ),
    entry(
      "api.get.rps",
      "GET /task/{id}",
      "req/s",
      api("tme", "get", "requestsPerSecond"),
      api("bare", "get", "requestsPerSecond"),
      "bare SELECT",
      { on: "ratio", op: ">=", target: 0.5 },
    ),
    entry(
      "api.get.p99",
      "GET /task/{id} p99",
      "ms",
      api("tme", "get", "p99Ms"),
      api("bare", "get", "p99Ms"),
      "bare SELECT",
      null,
    ),
  );
  const backlog = runs.listing[0]?.backlog ?? 0;
  out.push(
    entry(
      "api.list.p50",
      `GET /tasks?limit=50 p50, ${backlog.toLocaleString("en-US")} queued`,
      "ms",
      median(runs.listing.map((r) => r.p50Ms)),
      null,
      null,
      { on: "value", op: "<", target: 20 },
    ),
  );
  const rss = median(runs.idleRss.map((r) => r.bytes).filter((b): b is number => b !== null));
  out.push(
    entry("idle.rss", "idle RSS of TME", "MB", rss === null ? null : rss / 2 ** 20, null, null, {
      on: "value",
      op: "<",
      target: 150,
    }),
    entry(
      "storage.per_task",
      "storage per finished task",
      "bytes",
      median(runs.storage.map((r) => r.bytesPerTask)),
      null,
      null,
      null,
      "tasks, task_events, task_runs, outbox after VACUUM",
    ),
  );
  return out;
}

function format(value: number | null, unit: string): string {
  if (value === null) return "n/a";
  if (unit === "ms") return value < 10 ? value.toFixed(1) : value.toFixed(0);
  if (unit === "MB") return value.toFixed(0);
  return Math.round(value).toLocaleString("en-US");
}

function goalText(goal: Goal | null): string {
  if (!goal) return "";
  return goal.on === "ratio" ? `${goal.op} ${goal.target}x` : `${goal.op} ${goal.target}`;
}

/** The table: one line per comparison, medians of the repeats. */
export function markdownTable(result: BenchResult): string {
  const lines = [
    "| measure | TME | baseline | ratio | goal | met |",
    "| --- | ---: | ---: | ---: | --- | --- |",
  ];
  for (const c of result.comparisons) {
    const baseline = c.baselineName ? `${format(c.baseline, c.unit)} (${c.baselineName})` : "";
    const ratio = c.ratio === null ? "" : `${c.ratio.toFixed(2)}x`;
    const met = c.met === null ? "" : c.met ? "yes" : "no";
    const note = c.note ? ` (${c.note})` : "";
    lines.push(
      `| ${c.label}${note} | ${format(c.tme, c.unit)} ${c.unit} | ${baseline} | ${ratio} | ${goalText(c.goal)} | ${met} |`,
    );
  }
  return lines.join("\n");
}

export function machineLine(result: BenchResult): string {
  const m = result.machine as Record<string, unknown>;
  return `${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, PostgreSQL ${m.postgres} (${m.server}); load average at start ${(m.loadAverageAtStart as number[]).join(" ")}; commit ${m.commit}; ${result.durationSeconds} s`;
}
