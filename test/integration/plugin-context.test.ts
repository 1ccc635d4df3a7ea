import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import type { SQSEvent } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  environmentSecrets,
  secretsManagerSecrets,
} from "../../functions/adapters/secrets/secret-readers.js";
import { definePlugin } from "../../functions/core/plugins/plugin.js";
import { createWorkerHandler } from "../../functions/handlers/worker.js";
import { createEngineHarness, type EngineHarness } from "../helpers/engine.js";

let h: EngineHarness;
beforeAll(async () => {
  h = await createEngineHarness();
});
afterAll(async () => {
  await h.close();
});

const message = (taskId: string): SQSEvent => ({
  Records: [{ messageId: "m1", body: JSON.stringify({ task_id: taskId, attempt: 1 }) } as never],
});

describe("what a plugin gets in ctx, through the worker handler", () => {
  it("its parsed params, attempt, limits, an abort signal, progress and secrets", async () => {
    const seen: Record<string, unknown> = {};
    const probe = definePlugin({
      name: "probe",
      paramsSchema: z.object({ echo: z.string(), times: z.number().default(2) }).strict(),
      async run(ctx) {
        Object.assign(seen, {
          params: ctx.params,
          attempt: ctx.attempt,
          maxAttempts: ctx.maxAttempts,
          timeoutSeconds: ctx.timeoutSeconds,
          aborted: ctx.signal.aborted,
          token: await ctx.secret("api.token"),
          missing: await ctx.secret("not_there").catch((e: Error) => e.message),
        });
        ctx.progress(50, "half");
        return { result: "done" };
      },
    });
    // The app's registry, with every name resolving to the probe.
    const plugins: typeof h.app.plugins = Object.assign(Object.create(h.app.plugins), {
      resolve: () => ({ module: "probe", plugin: probe, concurrency: undefined }),
    });
    const task = await h.create({
      name: "noop",
      params: { echo: "hi" },
      timeout_seconds: 7,
      max_attempts: 2,
    });
    const worker = createWorkerHandler(
      { ...h.app, plugins },
      { workerId: "probe", secret: environmentSecrets({ TME_SECRET_API_TOKEN: "s3cret" }) },
    );
    expect((await worker(message(task.id))).results).toEqual({ m1: "succeeded" });
    expect(seen).toEqual({
      params: { echo: "hi", times: 2 },
      attempt: 1,
      maxAttempts: 2,
      timeoutSeconds: 7,
      aborted: false,
      token: "s3cret",
      missing: "secret not_there is not set (environment variable TME_SECRET_NOT_THERE)",
    });
    expect(await h.task(task.id)).toMatchObject({
      status: "succeeded",
      result: "done",
      progress: { percent: 50, message: "half" },
    });
  });
});

describe("secret readers", () => {
  it("locally: TME_SECRET_<NAME>, refusing names that are not names", async () => {
    const read = environmentSecrets({ TME_SECRET_DB_PASSWORD: "pw" });
    expect(await read("db-password")).toBe("pw");
    await expect(read("a b")).rejects.toThrow(/is not valid/);
  });

  it("in the cloud: the Secrets Manager secret <prefix><name>", async () => {
    const sm = mockClient(SecretsManagerClient);
    sm.on(GetSecretValueCommand, { SecretId: "tme/tasks/api_token" }).resolves({ SecretString: "from-sm" });
    sm.on(GetSecretValueCommand, { SecretId: "tme/tasks/gone" }).rejects(
      new ResourceNotFoundException({ message: "nope", $metadata: {} }),
    );
    const read = secretsManagerSecrets("tme/tasks/", new SecretsManagerClient({ region: "eu-west-1" }));
    expect(await read("api_token")).toBe("from-sm");
    await expect(read("gone")).rejects.toThrow("secret gone not found");
    sm.restore();
  });
});
