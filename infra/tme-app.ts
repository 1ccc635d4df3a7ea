import { App, type AppProps, Aspects, Tags } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { TmeStack } from "./tme-stack.js";

export interface TmeApp {
  app: App;
  stack: TmeStack;
}

/**
 * Builds the app the CLI synthesizes and the tests inspect, so both see the same stack
 * with the same cdk-nag checks. A nag error fails `cdk synth`.
 */
export function createTmeApp(props: AppProps = {}): TmeApp {
  const app = new App(props);
  const stackName = (app.node.tryGetContext("stackName") as string | undefined) ?? "Tme";
  // Environment-agnostic on purpose: no account or region, so synth needs no credentials
  // and no lookups; the deploy's credentials pick the target.
  const stack = new TmeStack(app, stackName, {
    description: "TME, the Task Management Engine: HTTP API, task queues and workers, schedules, webhooks",
  });
  Tags.of(app).add("app", "tme");
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return { app, stack };
}
