import * as z from "zod";
import { definePlugin } from "../functions/core/plugins/plugin.js";

const DAY_MS = 86_400_000;

/**
 * Prunes history past the retention in app_config.yaml (retention.*): task events, runs of
 * finished tasks, and settled webhook deliveries, of the namespace the task runs in. Schedule
 * it, e.g. daily. Params override the configured days for one run; `all_namespaces: true`
 * prunes every namespace, and only an admin key may create such a task or schedule.
 */
export const handler = definePlugin({
  name: "clean_logs",
  description: "Deletes task_events, task_runs (of finished tasks) and deliveries older than the retention.",
  paramsSchema: z
    .object({
      task_events_days: z.number().positive().optional(),
      task_runs_days: z.number().positive().optional(),
      deliveries_days: z.number().positive().optional(),
      all_namespaces: z.boolean().optional(),
    })
    .strict(),
  requiredScope: (params) => (params.all_namespaces ? "admin" : undefined),
  async run(ctx) {
    const retention = ctx.config.retention;
    const now = Date.now();
    const before = (days: number) => new Date(now - days * DAY_MS);
    const namespace = ctx.params.all_namespaces ? null : ctx.namespace;
    const deleted = await ctx.services.history.prune(
      {
        taskEvents: before(ctx.params.task_events_days ?? retention.task_events_days),
        taskRuns: before(ctx.params.task_runs_days ?? retention.task_runs_days),
        deliveries: before(ctx.params.deliveries_days ?? retention.deliveries_days),
      },
      namespace,
    );
    ctx.logger.info({ deleted, namespace: namespace ?? "(all)" }, "clean_logs");
    return { result: { deleted, namespace: namespace ?? "*" } };
  },
});
