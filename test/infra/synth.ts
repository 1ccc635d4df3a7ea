import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Template } from "aws-cdk-lib/assertions";
import type { CfnFunction } from "aws-cdk-lib/aws-lambda";
import type { Asset } from "aws-cdk-lib/aws-s3-assets";
import type { TmeFunctionName } from "../../functions/config/cloud-environment.js";
import { REPO_ROOT } from "../../infra/constructs/tme-function.js";
import { createTmeApp } from "../../infra/tme-app.js";
import type { TmeStack } from "../../infra/tme-stack.js";

/** The context cdk.json gives the CLI, so tests inspect what `cdk synth` would build. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(REPO_ROOT, "cdk.json"), "utf8")) as {
    context: Record<string, unknown>;
  };
  return cdkJson.context;
}

export interface Synthesized {
  stack: TmeStack;
  template: Template;
  /** Logical id of each TME function in the template. */
  functionIds: Record<TmeFunctionName, string>;
}

/**
 * Synthesizes the TME app with cdk.json's context plus `overrides`. Bundling is skipped
 * (no esbuild run, no Docker): the assets are placeholders, the template is real.
 */
export function synthesize(overrides: Record<string, unknown> = {}): Synthesized {
  const { app, stack } = createTmeApp({
    context: { ...cdkJsonContext(), ...overrides, "aws:cdk:bundling-stacks": [] },
  });
  app.synth();
  const template = Template.fromStack(stack);
  const functionIds = Object.fromEntries(
    stack.functions.map((fn) => [fn.tmeName, stack.getLogicalId(fn.node.defaultChild as CfnFunction)]),
  ) as Record<TmeFunctionName, string>;
  return { stack, template, functionIds };
}

export interface BuiltBundles extends Synthesized {
  /** Each function's bundle, copied out of cdk.out to a directory of its own. */
  bundles: Record<TmeFunctionName, string>;
  /** Removes cdk.out and the copies. */
  remove(): void;
}

/**
 * Real bundling, as `cdk synth` does it: esbuild from node_modules, then the copy hooks. Each
 * bundle is copied to a directory outside the repository, where, as in Lambda's /var/task, no
 * node_modules of ours can rescue a missing file.
 */
export function synthesizeWithBundles(overrides: Record<string, unknown> = {}): BuiltBundles {
  const outdir = mkdtempSync(path.join(os.tmpdir(), "tme-cdk-out-"));
  const lambdaRoot = mkdtempSync(path.join(os.tmpdir(), "tme-var-task-"));
  const { app, stack } = createTmeApp({ outdir, context: { ...cdkJsonContext(), ...overrides } });
  app.synth();
  const bundles = {} as Record<TmeFunctionName, string>;
  for (const fn of stack.functions) {
    const asset = fn.node.findChild("Code") as Asset;
    const dir = path.join(lambdaRoot, fn.tmeName);
    cpSync(path.join(outdir, asset.assetPath), dir, { recursive: true });
    bundles[fn.tmeName] = dir;
  }
  const functionIds = Object.fromEntries(
    stack.functions.map((fn) => [fn.tmeName, stack.getLogicalId(fn.node.defaultChild as CfnFunction)]),
  ) as Record<TmeFunctionName, string>;
  return {
    stack,
    template: Template.fromStack(stack),
    functionIds,
    bundles,
    remove: () => {
      rmSync(outdir, { recursive: true, force: true });
      rmSync(lambdaRoot, { recursive: true, force: true });
    },
  };
}
