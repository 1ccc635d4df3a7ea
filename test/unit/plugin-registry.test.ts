import { describe, expect, it } from "vitest";
import { PluginRegistry } from "../../functions/adapters/plugins/plugin-registry.js";

describe("PluginRegistry.load", () => {
  it("stops on an export the module does not have, naming the mapping and the exports it has", async () => {
    await expect(
      PluginRegistry.load({ tasks: { nightly: { plugin: "noop", export: "nope" } } }),
    ).rejects.toThrow(
      'configurations/task_plugins.yaml: tasks."nightly": plugins/noop has no plugin export "nope" (plugin exports: handler)',
    );
  });

  it("stops on a module that does not exist, naming the mapping", async () => {
    await expect(
      PluginRegistry.load({ tasks: { "report_*": { plugin: "reprot", export: "handler" } } }),
    ).rejects.toThrow(/tasks\."report_\*": plugin module "reprot" not found/);
  });

  it("resolves an exact name before a glob, a command to shell, and nothing else to nothing", async () => {
    const registry = await PluginRegistry.load({
      tasks: {
        "job_*": { plugin: "sleep", export: "handler", concurrency: 2 },
        job_fast: { plugin: "noop", export: "handler" },
      },
    });
    expect(registry.resolve("job_fast", false)?.module).toBe("noop");
    expect(registry.resolve("job_slow", false)?.module).toBe("sleep");
    expect(registry.concurrencyOf("job_slow")).toBe(2);
    expect(registry.concurrencyOf("job_fast")).toBeUndefined();
    expect(registry.resolve("unmapped", true)?.module).toBe("shell");
    expect(registry.resolve("unmapped", false)).toBeUndefined();
  });
});
