import type { AppContext } from "../context.js";
import { evaluateAlerts } from "../core/alerts/evaluate-alerts.js";
import type { BackgroundService } from "./runtime.js";

/** Evaluates the alert rules every alerts.evaluate_every_seconds. */
export function alertEvaluatorService(app: AppContext): BackgroundService {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped || running) return;
    running = evaluateAlerts(app)
      .catch((error) => app.logger.error({ err: error }, "alert evaluation"))
      .finally(() => {
        running = undefined;
      });
  };
  return {
    name: "alert-evaluator",
    start() {
      timer = setInterval(tick, app.config.app.alerts.evaluate_every_seconds * 1000);
      tick();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
