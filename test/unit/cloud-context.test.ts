import { describe, expect, it } from "vitest";
import { cloudContext, coldStart } from "../../functions/adapters/aws/cloud-context.js";
import { CloudEnvironmentError } from "../../functions/config/cloud-environment.js";
import type { AppContext } from "../../functions/context.js";

describe("cloudContext", () => {
  it("refuses to start a function whose environment misses what the stack promised, naming each variable", async () => {
    const error = await cloudContext("worker", { TME_RUNTIME: "cloud" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudEnvironmentError);
    const message = (error as Error).message;
    expect(message).not.toContain("\n");
    for (const name of ["DATABASE_SECRET_ARN", "TASK_QUEUE_URL_HIGH", "EVENT_BUS_NAME"]) {
      expect(message).toContain(`environment variable ${name}: missing (required by the worker function)`);
    }
  });
});

describe("coldStart", () => {
  it("builds once per container, and tries again after a cold start that failed", async () => {
    const app = { config: {} } as unknown as AppContext;
    let calls = 0;
    const context = async () => {
      calls++;
      if (calls === 1) throw new Error("Secrets Manager unreachable");
      return app;
    };
    let builds = 0;
    const setup = coldStart(
      "api",
      (built) => {
        builds++;
        return { built };
      },
      context,
    );
    await expect(setup()).rejects.toThrow("Secrets Manager unreachable");
    const [first, second] = await Promise.all([setup(), setup()]);
    expect(first.built).toBe(app);
    expect(second).toBe(first);
    expect(await setup()).toBe(first);
    expect({ calls, builds }).toEqual({ calls: 2, builds: 1 });
  });
});
