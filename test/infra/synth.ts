import { readFileSync } from "node:fs";
import path from "node:path";
import { Template } from "aws-cdk-lib/assertions";
import type { CfnFunction } from "aws-cdk-lib/aws-lambda";
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
