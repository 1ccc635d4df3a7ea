import type { AppContext } from "../../context.js";
import { ALERT_RULES, type AlertRule, diffAlerts, enabledRules } from "../../core/alerts/alert.js";
import { holdingConditions, openAlerts, raiseAlert, resolveAlert } from "../postgres/alert-repository.js";

/**
 * One evaluation of every alert rule: raises alert.raised for each new condition (once: an open
 * alert per rule and subject) and alert.resolved for each open alert whose condition cleared.
 * A rule switched off in configuration resolves its open alerts. The local runtime runs this on
 * a timer; in the cloud the reaper Lambda calls it on each run.
 */
export async function evaluateAlerts(app: AppContext): Promise<{ raised: number; resolved: number }> {
  const enabled = new Set<AlertRule>(enabledRules(app.config.app.alerts));
  let raised = 0;
  let resolved = 0;
  for (const rule of ALERT_RULES) {
    try {
      const open = await openAlerts(app.db, rule);
      const holding = enabled.has(rule)
        ? await holdingConditions(
            app.db,
            rule,
            app.config.app.alerts,
            open.map((a) => a.subject),
          )
        : [];
      const diff = diffAlerts(open, holding);
      const now = app.now();
      for (const condition of diff.raise) if (await raiseAlert(app.db, condition, now)) raised++;
      for (const alert of diff.resolve) if (await resolveAlert(app.db, alert.id, now)) resolved++;
    } catch (error) {
      // One broken rule (a table another area has not migrated yet) must not silence the others.
      app.logger.error({ err: error, rule }, "alert rule evaluation failed");
    }
  }
  if (raised + resolved > 0) app.logger.info({ raised, resolved }, "alerts evaluated");
  return { raised, resolved };
}
