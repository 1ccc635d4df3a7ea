import type { AppConfig } from "../../config/schema.js";

/** The alert rules of app_config `alerts:`; each raises at most one open alert per subject. */
export const ALERT_RULES = [
  "task_failed",
  "task_running_long",
  "task_queued_long",
  "queue_backlog",
  "schedule_missed",
  "endpoint_disabled",
  "deliveries_given_up",
] as const;
export type AlertRule = (typeof ALERT_RULES)[number];

/** A condition that holds now: what an open alert stands for. */
export interface AlertCondition {
  rule: AlertRule;
  /** What it is about: a task, schedule or subscription id, or a namespace for the backlog. */
  subject: string;
  namespace: string;
  message: string;
  details: Record<string, unknown>;
}

export interface OpenAlert {
  id: string;
  rule: AlertRule;
  subject: string;
}

/**
 * What to do after evaluating a rule: raise the conditions that have no open alert, resolve the
 * open alerts whose condition no longer holds. Pure, so the dedup rule is tested alone.
 */
export function diffAlerts(
  open: OpenAlert[],
  holding: AlertCondition[],
): { raise: AlertCondition[]; resolve: OpenAlert[] } {
  const key = (a: { rule: string; subject: string }) => `${a.rule}\u0000${a.subject}`;
  const openKeys = new Set(open.map(key));
  const holdingKeys = new Set(holding.map(key));
  const seen = new Set<string>();
  const raise = holding.filter((c) => {
    const k = key(c);
    if (openKeys.has(k) || seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return { raise, resolve: open.filter((a) => !holdingKeys.has(key(a))) };
}

/** The rules switched on by configuration (a threshold of 0 turns its rule off). */
export function enabledRules(config: AppConfig["alerts"]): AlertRule[] {
  const on: Record<AlertRule, boolean> = {
    task_failed: config.task_failed,
    task_running_long: config.task_running_longer_than_seconds > 0,
    task_queued_long: config.task_queued_longer_than_seconds > 0,
    queue_backlog: config.queue_backlog_age_seconds > 0,
    schedule_missed: config.schedule_missed,
    // Always on: an endpoint TME disabled must be seen, and endpoint_failing_hours sets when.
    endpoint_disabled: true,
    deliveries_given_up: config.deliveries_given_up,
  };
  return ALERT_RULES.filter((rule) => on[rule]);
}

/** An alert as stored: open while its condition holds, resolved once it clears. */
export interface Alert {
  id: string;
  namespace: string;
  rule: AlertRule;
  subject: string;
  status: "open" | "resolved";
  message: string;
  details: Record<string, unknown>;
  raised_at: Date;
  resolved_at: Date | null;
}

/** An alert as the API shows it and as alert.raised / alert.resolved events carry it. */
export function alertView(alert: Alert) {
  return {
    id: alert.id,
    alert_id: alert.id,
    namespace: alert.namespace,
    rule: alert.rule,
    subject: alert.subject,
    status: alert.status,
    message: alert.message,
    details: alert.details,
    raised_at: alert.raised_at.toISOString(),
    resolved_at: alert.resolved_at ? alert.resolved_at.toISOString() : null,
  };
}
