import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TmeFunctionName } from "../../functions/config/cloud-environment.js";
import { type BuiltBundles, synthesizeWithBundles } from "./synth.js";

let built: BuiltBundles;
let bundles: Record<TmeFunctionName, string>;

beforeAll(() => {
  built = synthesizeWithBundles();
  bundles = built.bundles;
}, 120_000);

afterAll(() => built?.remove());

describe("Lambda bundles", () => {
  it("load on their own and export a handler function", () => {
    for (const [name, dir] of Object.entries(bundles)) {
      const run = () =>
        execFileSync(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            "const m = await import('./index.mjs'); if (typeof m.handler !== 'function') throw new Error('no handler export');",
          ],
          { cwd: dir, env: { PATH: process.env.PATH ?? "" }, stdio: "pipe" },
        );
      expect(run, name).not.toThrow();
    }
  });

  it("carry the YAML configuration, with source maps beside the code", () => {
    for (const [name, dir] of Object.entries(bundles)) {
      expect(readdirSync(path.join(dir, "configurations")).sort(), name).toEqual([
        "app_config.yaml",
        "db_config.yaml",
        "task_plugins.yaml",
      ]);
      expect(existsSync(path.join(dir, "index.mjs.map")), name).toBe(true);
    }
  });

  it("give the migrate function every SQL migration, and only it", () => {
    const sql = readdirSync(path.join(import.meta.dirname, "../../migrations")).filter((f) =>
      f.endsWith(".sql"),
    );
    expect(readdirSync(path.join(bundles.migrate, "migrations")).sort()).toEqual(sql.sort());
    for (const [name, dir] of Object.entries(bundles)) {
      if (name !== "migrate") expect(existsSync(path.join(dir, "migrations")), name).toBe(false);
    }
  });
});
