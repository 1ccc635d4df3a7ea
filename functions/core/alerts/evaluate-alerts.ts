import type { AppConfig } from "../../config/schema.js";
import type { Logger } from "../../logging/logger.js";
import type { Keyset, KeysetPage } from "../paging.js";
import { ALERT_RULES, type Alert, type AlertRule, diffAlerts, enabledRules } from "./alert.js";
import type { AlertStore } from "./alert-store.js";

/** What evaluating the rules needs (an AppContext has it all). */
export interface AlertServices {
  alerts: AlertStore;
  config: { app: { alerts: AppConfig["alerts"] } };
  now: () => Date;
  logger: Logger;
}

/**
 * One evaluation of every alert rule: raises alert.raised for each new condition (once: an open
 * alert per rule and subject) and alert.resolved for each open alert whose condition cleared.
 * A rule switched off in configuration resolves its open alerts. The local runtime runs this on
 * a timer; in the cloud the reaper Lambda calls it on each run.
 */
export async function evaluateAlerts(app: AlertServices): Promise<{ raised: number; resolved: number }> {
  const config = app.config.app.alerts;
  const enabled = new Set<AlertRule>(enabledRules(config));
  let raised = 0;
  let resolved = 0;
  for (const rule of ALERT_RULES) {
    try {
      const open = await app.alerts.openAlerts(rule);
      const holding = enabled.has(rule)
        ? await app.alerts.holdingConditions(
            rule,
            config,
            open.map((a) => a.subject),
          )
        : [];
      const diff = diffAlerts(open, holding);
      const now = app.now();
      for (const condition of diff.raise) if (await app.alerts.raise(condition, now)) raised++;
      for (const alert of diff.resolve) if (await app.alerts.resolve(alert.id, now)) resolved++;
    } catch (error) {
      // One broken rule (a table another area has not migrated yet) must not silence the others.
      app.logger.error({ err: error, rule }, "alert rule evaluation failed");
    }
  }
  if (raised + resolved > 0) app.logger.info({ raised, resolved }, "alerts evaluated");
  return { raised, resolved };
}

/** GET /alerts: open alerts, and those resolved within the last `resolvedWithinHours`. */
export function listAlerts(
  app: Pick<AlertServices, "alerts" | "now">,
  namespace: string,
  query: {
    status?: "open" | "resolved";
    rule?: AlertRule;
    resolvedWithinHours: number;
    limit: number;
    after?: Keyset;
  },
): Promise<KeysetPage<Alert>> {
  return app.alerts.list(namespace, {
    status: query.status,
    rule: query.rule,
    resolvedSince: new Date(app.now().getTime() - query.resolvedWithinHours * 3_600_000),
    limit: query.limit,
    after: query.after,
  });
}
