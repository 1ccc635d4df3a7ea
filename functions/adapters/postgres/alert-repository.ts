import type { AppConfig } from "../../config/schema.js";
import {
  type Alert,
  type AlertCondition,
  type AlertRule,
  alertView,
  type OpenAlert,
} from "../../core/alerts/alert.js";
import type { AlertStore } from "../../core/alerts/alert-store.js";
import { newEvent } from "../../core/events/event.js";
import { newId } from "../../core/ids.js";
import type { Db, Queryable } from "./database.js";
import { writeEvent } from "./event-writer.js";
import { type Keyset, type KeysetPage, keysetPage } from "./keyset.js";

/** The stored alert (the core's Alert), by its table's name. */
export type AlertRow = Alert;

const COLUMNS = "id, namespace, rule, subject, status, message, details, raised_at, resolved_at";

/** A timestamp as the API writes them (ISO 8601 UTC, milliseconds), not Postgres's own text. */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

type Row = { subject: string; namespace: string; message: string; details: Record<string, unknown> };

/**
 * The SQL of each rule: the conditions holding now. `$1` is the subjects of the rule's open
 * alerts, so a condition that started long ago (a task failed last week and never restarted)
 * still counts as holding, while new conditions are looked for in a recent window only.
 */
function ruleQuery(
  rule: AlertRule,
  config: AppConfig["alerts"],
): { sql: string; usesOpenSubjects: boolean; values: unknown[] } {
  switch (rule) {
    case "task_failed":
      return {
        sql: `SELECT id AS subject, namespace,
                'task ' || name || ' (' || id || ') ended ' || status || ' on its last attempt' AS message,
                jsonb_build_object('task_id', id, 'name', name, 'status', status, 'error', error,
                                   'attempt', attempt, 'finished_at', ${iso("finished_at")}) AS details
              FROM tasks WHERE (status IN ('failed', 'timed_out') AND finished_at > now() - interval '1 day')
                -- Open until the task recovers: a restart that is still running (or fails again)
                -- does not resolve it, a success or a cancel does.
                OR (id = ANY($1) AND status NOT IN ('succeeded', 'cancelled'))`,
        usesOpenSubjects: true,
        values: [],
      };
    case "task_running_long":
      return {
        sql: `SELECT id AS subject, namespace,
                'task ' || name || ' (' || id || ') has been running for more than ' || $1::int || ' s' AS message,
                jsonb_build_object('task_id', id, 'name', name, 'started_at', ${iso("started_at")}) AS details
              FROM tasks WHERE status = 'running' AND started_at < now() - make_interval(secs => $1::int)`,
        usesOpenSubjects: false,
        values: [config.task_running_longer_than_seconds],
      };
    case "task_queued_long":
      return {
        sql: `SELECT id AS subject, namespace,
                'task ' || name || ' (' || id || ') has been queued for more than ' || $1::int || ' s' AS message,
                jsonb_build_object('task_id', id, 'name', name, 'run_at', ${iso("run_at")}) AS details
              FROM tasks WHERE status = 'queued' AND run_at < now() - make_interval(secs => $1::int)
              ORDER BY run_at LIMIT 1000`,
        usesOpenSubjects: false,
        values: [config.task_queued_longer_than_seconds],
      };
    case "queue_backlog":
      return {
        sql: `SELECT namespace AS subject, namespace,
                'the oldest due task of namespace ' || namespace || ' has waited more than ' || $1::int || ' s' AS message,
                jsonb_build_object('oldest_run_at', ${iso("min(run_at)")}, 'queued', count(*)) AS details
              FROM tasks WHERE status = 'queued' AND run_at <= now()
              GROUP BY namespace HAVING min(run_at) < now() - make_interval(secs => $1::int)`,
        usesOpenSubjects: false,
        values: [config.queue_backlog_age_seconds],
      };
    case "schedule_missed":
      return {
        sql: `SELECT id AS subject, namespace,
                'schedule ' || name || ' (' || id || ') missed its firing due at ' || ${iso("next_run_at")} AS message,
                jsonb_build_object('schedule_id', id, 'name', name, 'next_run_at', ${iso("next_run_at")},
                                   'last_fired_at', ${iso("last_fired_at")}) AS details
              FROM schedules WHERE enabled AND deleted_at IS NULL
                AND next_run_at < now() - make_interval(secs => $1::int)
                AND (end_at IS NULL OR next_run_at < end_at)`,
        usesOpenSubjects: false,
        values: [config.schedule_missed_grace_seconds],
      };
    case "endpoint_disabled":
      return {
        sql: `SELECT id AS subject, namespace,
                'webhook endpoint ' || callback_url || ' was disabled: ' || coalesce(disabled_reason, disabled_cause) AS message,
                jsonb_build_object('subscription_id', id, 'callback_url', callback_url, 'cause', disabled_cause,
                                   'disabled_at', ${iso("disabled_at")}) AS details
              FROM subscriptions WHERE NOT enabled AND deleted_at IS NULL
                AND disabled_cause IN ('gone', 'failing')`,
        usesOpenSubjects: false,
        values: [],
      };
    case "deliveries_given_up":
      return {
        sql: `SELECT s.id AS subject, s.namespace,
                count(*) || ' webhook deliveries to ' || s.callback_url || ' were given up' AS message,
                jsonb_build_object('subscription_id', s.id, 'callback_url', s.callback_url, 'given_up', count(*)) AS details
              FROM subscriptions s
              JOIN LATERAL (SELECT DISTINCT ON (d.event_id) d.status FROM deliveries d
                            WHERE d.subscription_id = s.id ORDER BY d.event_id, d.attempt DESC) last ON true
              WHERE s.deleted_at IS NULL AND last.status = 'given_up'
              GROUP BY s.id`,
        usesOpenSubjects: false,
        values: [],
      };
  }
}

export async function holdingConditions(
  db: Queryable,
  rule: AlertRule,
  config: AppConfig["alerts"],
  openSubjects: string[],
): Promise<AlertCondition[]> {
  const { sql, usesOpenSubjects, values } = ruleQuery(rule, config);
  const { rows } = await db.query<Row>(sql, usesOpenSubjects ? [openSubjects, ...values] : values);
  return rows.map((r) => ({ rule, ...r }));
}

export async function openAlerts(db: Queryable, rule: AlertRule): Promise<OpenAlert[]> {
  const { rows } = await db.query<OpenAlert>(
    `SELECT id, rule, subject FROM alerts WHERE rule = $1 AND status = 'open'`,
    [rule],
  );
  return rows;
}

/** Opens an alert and emits alert.raised, unless one is already open for (rule, subject). */
export async function raiseAlert(
  db: Db,
  condition: AlertCondition,
  now: Date,
): Promise<AlertRow | undefined> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<AlertRow>(
      `INSERT INTO alerts (id, namespace, rule, subject, status, message, details, raised_at)
       VALUES ($1, $2, $3, $4, 'open', $5, $6, $7)
       ON CONFLICT (rule, subject) WHERE status = 'open' DO NOTHING RETURNING ${COLUMNS}`,
      [
        newId("alr"),
        condition.namespace,
        condition.rule,
        condition.subject,
        condition.message,
        JSON.stringify(condition.details),
        now,
      ],
    );
    const row = rows[0];
    if (row) await writeEvent(tx, newEvent("alert.raised", row.namespace, { alert: alertView(row) }, now));
    return row;
  });
}

/** Closes an open alert and emits alert.resolved (once, however many evaluators run). */
export async function resolveAlert(db: Db, id: string, now: Date): Promise<AlertRow | undefined> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<AlertRow>(
      `UPDATE alerts SET status = 'resolved', resolved_at = $2 WHERE id = $1 AND status = 'open' RETURNING ${COLUMNS}`,
      [id, now],
    );
    const row = rows[0];
    if (row) await writeEvent(tx, newEvent("alert.resolved", row.namespace, { alert: alertView(row) }, now));
    return row;
  });
}

/** Open alerts, and alerts resolved since `resolvedSince`, newest first. */
export async function listAlerts(
  db: Queryable,
  namespace: string,
  options: {
    status?: "open" | "resolved";
    resolvedSince: Date;
    rule?: string;
    limit: number;
    after?: Keyset;
  },
): Promise<KeysetPage<AlertRow>> {
  return keysetPage<AlertRow>(
    db,
    {
      columns: COLUMNS,
      from: "alerts",
      where: `namespace = $1
       AND (status = 'open' OR resolved_at >= $2)
       AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR rule = $4)`,
      values: [namespace, options.resolvedSince, options.status ?? null, options.rule ?? null],
      column: "raised_at",
    },
    options,
  );
}

/** The alert store on `db`: each method is the function of the same job above. */
export function postgresAlertStore(db: Db): AlertStore {
  return {
    holdingConditions: (rule, config, openSubjects) => holdingConditions(db, rule, config, openSubjects),
    openAlerts: (rule) => openAlerts(db, rule),
    raise: (condition, now) => raiseAlert(db, condition, now),
    resolve: (id, now) => resolveAlert(db, id, now),
    list: (namespace, filter) => listAlerts(db, namespace, filter),
  };
}
