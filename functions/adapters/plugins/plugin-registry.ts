import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import picomatch from "picomatch";
import { builtinPlugins } from "../../../plugins/index.js";
import type { TaskPluginsConfig } from "../../config/schema.js";
import { InternalError } from "../../core/errors.js";
import type { PluginResolver, ResolvedPlugin, TaskPlugin } from "../../core/plugins/plugin.js";

const PLUGINS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../plugins");

/** The plugin that runs tasks with a `command` and no mapping of their own. */
export const SHELL_MODULE = "shell";

export class PluginConfigError extends InternalError {
  override name = "PluginConfigError";
}

function isPlugin(value: unknown): value is TaskPlugin {
  const v = value as TaskPlugin | undefined;
  return typeof v === "object" && v !== null && typeof v.name === "string" && typeof v.run === "function";
}

async function loadModule(module: string, where: string): Promise<Record<string, unknown>> {
  const builtin = builtinPlugins[module];
  if (builtin) return builtin;
  const file = path.join(PLUGINS_DIR, `${module}.ts`);
  if (!existsSync(file)) {
    const known = Object.keys(builtinPlugins).sort().join(", ");
    throw new PluginConfigError(
      `${where}: plugin module "${module}" not found (no plugins/${module}.ts; built-in: ${known})`,
    );
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

interface Mapping {
  pattern: string;
  matches: (name: string) => boolean;
  resolved: ResolvedPlugin;
}

/**
 * task_plugins.yaml made real: each mapping's module is loaded and checked at start, so a
 * typo stops TME with the mapping named, instead of failing tasks later.
 */
export class PluginRegistry implements PluginResolver {
  private constructor(
    private readonly exact: Map<string, ResolvedPlugin>,
    private readonly globs: Mapping[],
    private readonly shell: ResolvedPlugin | undefined,
  ) {}

  static async load(
    config: TaskPluginsConfig,
    file = "configurations/task_plugins.yaml",
  ): Promise<PluginRegistry> {
    const exact = new Map<string, ResolvedPlugin>();
    const globs: Mapping[] = [];
    for (const [pattern, mapping] of Object.entries(config.tasks)) {
      const where = `${file}: tasks."${pattern}"`;
      const module = await loadModule(mapping.plugin, where);
      const plugin = module[mapping.export];
      if (!isPlugin(plugin)) {
        const exports = Object.keys(module).filter((k) => isPlugin(module[k]));
        throw new PluginConfigError(
          `${where}: plugins/${mapping.plugin} has no plugin export "${mapping.export}" (plugin exports: ${exports.join(", ") || "none"})`,
        );
      }
      const resolved = { module: mapping.plugin, plugin, concurrency: mapping.concurrency };
      if (picomatch.scan(pattern).isGlob) {
        globs.push({ pattern, matches: picomatch(pattern, { dot: true }), resolved });
      } else {
        exact.set(pattern, resolved);
      }
    }
    const shellModule = builtinPlugins[SHELL_MODULE];
    const shellPlugin = shellModule?.handler;
    const shell = isPlugin(shellPlugin)
      ? { module: SHELL_MODULE, plugin: shellPlugin, concurrency: undefined }
      : undefined;
    return new PluginRegistry(exact, globs, shell);
  }

  private mapped(name: string): ResolvedPlugin | undefined {
    return this.exact.get(name) ?? this.globs.find((g) => g.matches(name))?.resolved;
  }

  resolve(name: string, hasCommand: boolean): ResolvedPlugin | undefined {
    return this.mapped(name) ?? (hasCommand ? this.shell : undefined);
  }

  concurrencyOf(name: string): number | undefined {
    return this.mapped(name)?.concurrency;
  }

  /** Mappings with a concurrency limit, for the queue's per-type limits and GET /task-types. */
  limits(): Array<{ pattern: string; concurrency: number }> {
    const all = [
      ...[...this.exact].map(([pattern, r]) => ({ pattern, r })),
      ...this.globs.map((g) => ({ pattern: g.pattern, r: g.resolved })),
    ];
    return all.flatMap(({ pattern, r }) => (r.concurrency ? [{ pattern, concurrency: r.concurrency }] : []));
  }
}
