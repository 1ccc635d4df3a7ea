import { describe, expect, it } from "vitest";
import { cloudContext } from "../../functions/adapters/aws/cloud-context.js";
import { CloudEnvironmentError } from "../../functions/config/cloud-environment.js";

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
