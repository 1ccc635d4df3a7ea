import client from "prom-client";

/** Seconds, from a few milliseconds to a day: attempts and waits span all of that. */
export const DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600,
  86400,
];
/** Seconds, for requests and webhook attempts (a webhook's deadline is at most 60 s). */
export const REQUEST_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** The label of everything past a budget. */
export const OTHER = "other";
/** The route label of a request that matched no route. */
export const UNMATCHED_ROUTE = "unmatched";

/**
 * Keeps a label's values bounded: the first `max` distinct values get their own series, every
 * later one is counted as "other", so a client inventing task names cannot blow up Prometheus.
 */
export class LabelBudget {
  private readonly admitted = new Set<string>();

  constructor(private readonly max: number) {}

  label(value: string): string {
    if (this.admitted.has(value)) return value;
    if (this.admitted.size >= this.max) return OTHER;
    this.admitted.add(value);
    return value;
  }
}

/** The non-final task statuses the gauges report. */
export const GAUGED_STATUSES = ["queued", "running", "retrying", "paused"] as const;

/** What the database says at one moment; read at most once per scrape (and cached). */
export interface GaugeSnapshot {
  tasks: Array<{ namespace: string; name: string; status: string; count: number }>;
  outboxBacklog: number;
  outboxOldestAgeSeconds: number;
  schedulesLate: number;
  scheduleLatenessSeconds: number;
}

/** Where the gauges come from: the database (cached by the caller), the pool, the worker slots. */
export interface GaugeSources {
  snapshot(): Promise<GaugeSnapshot>;
  pool(): { total: number; idle: number; waiting: number; max: number };
  slots(): { busy: number; free: number };
  onSnapshotError(error: unknown): void;
}

export interface MetricsOptions {
  maxTaskNames: number;
  maxNamespaces: number;
}

/** A registry with Node's default process metrics, which the scrape lists before TME's own. */
function registryWithDefaultMetrics(): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * Every Prometheus metric TME exposes, on a registry of its own (so two runtimes in one process,
 * as in tests, never share series). Names follow Prometheus conventions: base units (seconds),
 * `_total` for counters, bounded labels (route templates, capped task names and namespaces).
 */
export class TmeMetrics {
  readonly registry = registryWithDefaultMetrics();
  private readonly registers = [this.registry];
  private readonly names: LabelBudget;
  private readonly namespaces: LabelBudget;

  readonly tasksCreated = this.counter(
    "tme_tasks_created_total",
    "Tasks stored (from the API and from schedules)",
    ["namespace", "task_name"],
  );
  readonly attemptsStarted = this.counter(
    "tme_task_attempts_started_total",
    "Attempts this process started",
    ["namespace", "task_name"],
  );
  readonly attemptsFinished = this.counter(
    "tme_task_attempts_finished_total",
    "Attempts this process ended, by outcome (succeeded, failed, timed_out, cancelled, retrying, released, lost)",
    ["namespace", "task_name", "outcome"],
  );
  readonly tasksFinished = this.counter(
    "tme_tasks_finished_total",
    "Tasks that reached a final status at the end of an attempt in this process (succeeded, failed, timed_out, cancelled)",
    ["namespace", "task_name", "outcome"],
  );
  readonly attemptDuration = this.histogram(
    "tme_task_attempt_duration_seconds",
    "How long attempts ran, claim to recorded end",
    ["task_name", "outcome"],
    DURATION_BUCKETS,
  );
  readonly startLatency = this.histogram(
    "tme_task_start_latency_seconds",
    "From when a task became due (its creation, or its run_at if later) to the start of its first attempt",
    ["task_name"],
    DURATION_BUCKETS,
  );
  readonly claims = this.counter(
    "tme_task_claims_total",
    "Claims made by the worker pool, by whether they took tasks (claimed) or found none (empty)",
    ["result"],
  );
  readonly webhookDeliveries = this.counter(
    "tme_webhook_deliveries_total",
    "Webhook attempts, by outcome (succeeded, retrying, failed, given_up)",
    ["outcome"],
  );
  readonly webhookDuration = this.histogram(
    "tme_webhook_delivery_duration_seconds",
    "Latency of webhook attempts, request sent to response read",
    ["outcome"],
    REQUEST_BUCKETS,
  );
  readonly httpRequests = this.counter(
    "tme_http_requests_total",
    "API requests, by method, route template and status",
    ["method", "route", "status"],
  );
  readonly httpDuration = this.histogram(
    "tme_http_request_duration_seconds",
    "API request latency, by method and route template",
    ["method", "route"],
    REQUEST_BUCKETS,
  );

  constructor(options: MetricsOptions, sources: GaugeSources) {
    this.names = new LabelBudget(options.maxTaskNames);
    this.namespaces = new LabelBudget(options.maxNamespaces);
    this.defineGauges(sources, this.registers);
  }

  /** The namespace and task-name labels of a task, within their budgets. */
  taskLabels(task: { namespace: string; name: string }): { namespace: string; task_name: string } {
    return { namespace: this.namespaces.label(task.namespace), task_name: this.names.label(task.name) };
  }

  taskNameLabel(name: string): string {
    return this.names.label(name);
  }

  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /** A counter on this registry; its label type is the union of `labelNames`. */
  private counter<L extends string>(name: string, help: string, labelNames: L[]): client.Counter<L> {
    return new client.Counter<L>({ name, help, labelNames, registers: this.registers });
  }

  private histogram<L extends string>(
    name: string,
    help: string,
    labelNames: L[],
    buckets: number[],
  ): client.Histogram<L> {
    return new client.Histogram<L>({ name, help, labelNames, buckets, registers: this.registers });
  }

  private defineGauges(sources: GaugeSources, registers: client.Registry[]): void {
    // One read per scrape for every database gauge: the first collect starts it, the rest share it.
    let pending: Promise<GaugeSnapshot | undefined> | undefined;
    const snapshot = () => {
      pending ??= sources
        .snapshot()
        .then((value) => {
          databaseUp.set(1);
          return value;
        })
        .catch((error) => {
          databaseUp.set(0);
          sources.onSnapshotError(error);
          return undefined;
        })
        .finally(() => setImmediate(() => (pending = undefined)));
      return pending;
    };
    const databaseUp = new client.Gauge({
      name: "tme_metrics_database_up",
      help: "1 when the last scrape could read the database gauges, else 0 (they keep their last values)",
      registers,
    });

    // A series once reported stays, at 0, when its tasks are gone: "back to zero", not "absent".
    const seen = new Set<string>();
    const labels = this;
    new client.Gauge({
      name: "tme_tasks",
      help: "Tasks in a non-final status (queued, running, retrying, paused), by namespace and task name",
      labelNames: ["namespace", "task_name", "status"],
      registers,
      async collect() {
        const value = await snapshot();
        if (!value) return;
        const totals = new Map<string, number>();
        for (const key of seen) totals.set(key, 0);
        for (const row of value.tasks) {
          const { namespace, task_name } = labels.taskLabels(row);
          const key = JSON.stringify([namespace, task_name, row.status]);
          totals.set(key, (totals.get(key) ?? 0) + row.count);
        }
        this.reset();
        for (const [key, count] of totals) {
          seen.add(key);
          const [namespace, task_name, status] = JSON.parse(key) as [string, string, string];
          this.set({ namespace, task_name, status }, count);
        }
      },
    });
    // The single-value database gauges: each reads one field of the shared snapshot.
    const snapshotGauges: Array<[name: string, help: string, field: keyof Omit<GaugeSnapshot, "tasks">]> = [
      ["tme_outbox_backlog", "Outbox messages not yet relayed", "outboxBacklog"],
      [
        "tme_outbox_oldest_age_seconds",
        "Age of the oldest outbox message not yet relayed (0 when none)",
        "outboxOldestAgeSeconds",
      ],
      [
        "tme_schedules_late",
        "Enabled schedules whose next run time has passed without firing",
        "schedulesLate",
      ],
      [
        "tme_schedule_lateness_seconds",
        "How far past its next run time the latest enabled schedule is (0 when none is late)",
        "scheduleLatenessSeconds",
      ],
    ];
    for (const [name, help, field] of snapshotGauges) {
      new client.Gauge({
        name,
        help,
        registers,
        async collect() {
          const value = await snapshot();
          if (value) this.set(value[field]);
        },
      });
    }
    new client.Gauge({
      name: "tme_worker_slots",
      help: "Worker slots of this process, busy (running an attempt) or free",
      labelNames: ["state"],
      registers,
      collect() {
        const { busy, free } = sources.slots();
        this.set({ state: "busy" }, busy);
        this.set({ state: "free" }, free);
      },
    });
    new client.Gauge({
      name: "tme_db_pool_connections",
      help: "PostgreSQL pool connections, in use or idle",
      labelNames: ["state"],
      registers,
      collect() {
        const { total, idle } = sources.pool();
        this.set({ state: "in_use" }, total - idle);
        this.set({ state: "idle" }, idle);
      },
    });
    new client.Gauge({
      name: "tme_db_pool_waiting",
      help: "Queries waiting for a PostgreSQL pool connection",
      registers,
      collect() {
        this.set(sources.pool().waiting);
      },
    });
    new client.Gauge({
      name: "tme_db_pool_max",
      help: "The PostgreSQL pool's size limit",
      registers,
      collect() {
        this.set(sources.pool().max);
      },
    });
  }
}
