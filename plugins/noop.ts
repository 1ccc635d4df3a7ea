import * as z from "zod";
import { definePlugin } from "../functions/core/plugins/plugin.js";

/** Does nothing and succeeds; for tests and benchmarks of the engine itself. */
export const handler = definePlugin({
  name: "noop",
  description: "Succeeds at once; returns its params as the result.",
  paramsSchema: z.object({ echo: z.unknown().optional() }).strict(),
  async run(ctx) {
    return { result: ctx.params.echo ?? null };
  },
});
