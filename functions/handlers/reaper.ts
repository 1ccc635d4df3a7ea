import { LambdaObserver } from "../adapters/aws/lambda-observer.js";
import { lambdaHandler, lambdaTelemetry } from "../adapters/aws/lambda-telemetry.js";
import { readGaugeSnapshot } from "../adapters/postgres/metrics-repository.js";
import { cloudOutboxSinks } from "../cloud/outbox-sinks.js";
import { coldStart } from "../cloud/runtime.js";
import { type MaintenanceReport, runMaintenancePass } from "../core/maintenance/maintenance-pass.js";

const setup = coldStart("reaper", (app) => ({
  app,
  sinks: cloudOutboxSinks(app),
  gauges: () => readGaugeSnapshot(app.db),
}));
const observer = new LambdaObserver(lambdaTelemetry("reaper"));

/**
 * Lambda entry: an EventBridge schedule, every minute, runs one maintenance pass
 * (functions/core/maintenance/maintenance-pass.ts). Each pass that ends publishes the heartbeat
 * (ReaperRuns: an alarm fires when it stops) and the outbox backlog and its age.
 */
export const handler = lambdaHandler("reaper", async (): Promise<MaintenanceReport> => {
  const { app, sinks, gauges } = await setup();
  const report = await runMaintenancePass(app, sinks);
  observer.reaperPass(report, await gauges());
  return report;
});
