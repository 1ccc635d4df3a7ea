import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Asset } from "aws-cdk-lib/aws-s3-assets";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TmeFunctionName } from "../../functions/config/cloud-environment.js";
import { createTmeApp } from "../../infra/tme-app.js";
import { cdkJsonContext } from "./synth.js";

// Real bundling, as `cdk synth` does it: esbuild from node_modules, then the copy hooks.
// Each bundle is then loaded from a directory outside the repository, where, as in
// Lambda's /var/task, no node_modules of ours can rescue a missing file.
let outdir: string;
let lambdaRoot: string;
const bundles = {} as Record<TmeFunctionName, string>;

beforeAll(() => {
  outdir = mkdtempSync(path.join(os.tmpdir(), "tme-cdk-out-"));
  lambdaRoot = mkdtempSync(path.join(os.tmpdir(), "tme-var-task-"));
  const { app, stack } = createTmeApp({ outdir, context: cdkJsonContext() });
  app.synth();
  for (const fn of stack.functions) {
    const asset = fn.node.findChild("Code") as Asset;
    const dir = path.join(lambdaRoot, fn.tmeName);
    cpSync(path.join(outdir, asset.assetPath), dir, { recursive: true });
    bundles[fn.tmeName] = dir;
  }
}, 120_000);

afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
  rmSync(lambdaRoot, { recursive: true, force: true });
});

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
