import { setTimeout as delay } from "node:timers/promises";
import * as z from "zod";
import { definePlugin, PermanentTaskError } from "../functions/core/plugins/plugin.js";

/** Waits, reporting progress; for tests and benchmarks. Stops at once when aborted. */
export const handler = definePlugin({
  name: "sleep",
  description: "Sleeps `seconds` (default 1), reporting progress; `fail: true` fails at the end.",
  paramsSchema: z
    .object({
      seconds: z.number().min(0).max(86_400).default(1),
      fail: z.boolean().default(false),
    })
    .strict(),
  async run(ctx) {
    // Up to ten steps, a tenth of a second apart at least: enough reports to exercise throttling.
    const steps = Math.max(1, Math.min(10, Math.ceil(ctx.params.seconds * 10)));
    for (let step = 1; step <= steps; step++) {
      await delay((ctx.params.seconds * 1000) / steps, undefined, { signal: ctx.signal });
      ctx.progress(Math.round((step / steps) * 100), `step ${step} of ${steps}`);
    }
    if (ctx.params.fail) throw new PermanentTaskError("asked to fail");
    return { result: { slept_seconds: ctx.params.seconds } };
  },
});
