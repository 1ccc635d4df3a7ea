import type { AppConfig } from "../../config/schema.js";
import type { Keyset, KeysetPage } from "../paging.js";
import type { Alert, AlertCondition, AlertRule, OpenAlert } from "./alert.js";

export interface AlertListFilter {
  status?: "open" | "resolved";
  rule?: AlertRule;
  /** Resolved alerts are listed only when resolved at or after this instant. */
  resolvedSince: Date;
  limit: number;
  after?: Keyset;
}

/** Port: the alerts table and the rules' conditions, as the database sees them now. */
export interface AlertStore {
  /** The conditions of `rule` holding now; `openSubjects` are its open alerts' subjects (see the adapter). */
  holdingConditions(
    rule: AlertRule,
    config: AppConfig["alerts"],
    openSubjects: string[],
  ): Promise<AlertCondition[]>;
  openAlerts(rule: AlertRule): Promise<OpenAlert[]>;
  /** Opens an alert and emits alert.raised with it, unless one is already open for (rule, subject). */
  raise(condition: AlertCondition, now: Date): Promise<Alert | undefined>;
  /** Closes an open alert and emits alert.resolved (once, however many evaluators run). */
  resolve(id: string, now: Date): Promise<Alert | undefined>;
  /** Open alerts and recently resolved ones of a namespace, newest first. */
  list(namespace: string, filter: AlertListFilter): Promise<KeysetPage<Alert>>;
}
