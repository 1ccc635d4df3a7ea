/**
 * The contract between the handlers and the stack's alarms and dashboard for TME's own
 * CloudWatch metrics: the handlers write them as EMF log lines (Powertools Metrics,
 * functions/adapters/aws/lambda-telemetry.ts) and infra/constructs/monitoring.ts reads them by
 * these names. Free of imports, like cloud-environment.ts, so both sides can load it.
 */

/** CloudWatch namespace of every TME metric. */
export const METRIC_NAMESPACE = "TME";

/**
 * The one dimension every metric carries (Powertools always adds `service`). The same value for
 * every function, so "tasks created" is one series whether the api or schedule-target made them.
 */
export const METRIC_SERVICE = "tme";

export const TME_METRICS = {
  /** Tasks stored (api, schedule-target, worker for a series' next run). Count. */
  tasksCreated: "TasksCreated",
  /** Attempts the worker began. Count. */
  attemptsStarted: "AttemptsStarted",
  /** Tasks that ended in each final status (worker). Count. */
  tasksSucceeded: "TasksSucceeded",
  tasksFailed: "TasksFailed",
  tasksTimedOut: "TasksTimedOut",
  tasksCancelled: "TasksCancelled",
  /** Attempts that failed with attempts left (the task waits for its retry). Count. */
  attemptsRetrying: "AttemptsRetrying",
  /** Attempts whose lease was lost (the reaper takes the task back). Count. */
  attemptsLost: "AttemptsLost",
  /** How long an attempt ran. Milliseconds. */
  attemptDuration: "AttemptDuration",
  /** From a task's run_at to its first attempt's start: the wait in the queue. Milliseconds. */
  queueLatency: "QueueLatency",
  /** Webhook attempts that the receiver accepted, and the others (retrying, failed, given up). Count. */
  webhooksSucceeded: "WebhookDeliveriesSucceeded",
  webhooksFailed: "WebhookDeliveriesFailed",
  /** How long a webhook attempt took. Milliseconds. */
  webhookLatency: "WebhookLatency",
  /** One per reaper pass that finished: the heartbeat its alarm misses. Count. */
  reaperRuns: "ReaperRuns",
  /** Tasks of dead workers the reaper took back (requeued or failed). Count. */
  tasksReaped: "TasksReaped",
  /** Outbox rows not yet relayed, and the age of the oldest (reaper, every pass). Count, Seconds. */
  outboxBacklog: "OutboxBacklog",
  outboxOldestAge: "OutboxOldestAgeSeconds",
  /** Outbox rows a relay could not hand to SQS, the bus or Scheduler (retried later). Count. */
  outboxRelayFailed: "OutboxRelayFailed",
  /** Events too large for PutEvents, sent as a reference to the stored event. Count. */
  eventsSentAsReference: "EventsSentAsReference",
  /** Schedules whose next run is past and not yet fired (reaper, every pass). Count. */
  schedulesLate: "SchedulesLate",
} as const;

export type TmeMetricName = (typeof TME_METRICS)[keyof typeof TME_METRICS];
