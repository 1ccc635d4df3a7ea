import type { TaskPlugin } from "../functions/core/plugins/plugin.js";
import { handler as noop } from "./noop.js";
import { handler as sleep } from "./sleep.js";

/**
 * The plugins bundled with TME, by module name. The cloud worker is one esbuild bundle, so
 * every plugin it can run must be imported here. Locally, a module that is not listed is
 * loaded from plugins/<name>.ts on start.
 */
// biome-ignore lint/suspicious/noExplicitAny: each plugin has its own params type
export const builtinPlugins: Record<string, Record<string, TaskPlugin<any>>> = {
  noop: { handler: noop },
  sleep: { handler: sleep },
};
