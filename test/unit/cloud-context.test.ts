import { describe, expect, it } from "vitest";
import { cloudContext, cloudShell, coldStart } from "../../functions/cloud/runtime.js";
import { CloudEnvironmentError } from "../../functions/config/cloud-environment.js";
import { AppConfigSchema } from "../../functions/config/schema.js";
import type { AppContext } from "../../functions/context.js";
import { parseEncryptionKey } from "../../functions/core/crypto/secret-box.js";
import { commandArgv } from "../../plugins/shell.js";

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

describe("shell in the cloud", () => {
  const shell = {
    ...AppConfigSchema.parse({}).shell,
    allow_shell: false,
    allowed_commands: ["*"],
    env_allowlist: ["PATH"],
    output_tail_bytes: 65536,
  };

  it("runs no command unless the stack was deployed with enableShell", () => {
    expect(() => commandArgv("cat /proc/1/environ", cloudShell(shell, {}))).toThrow(/matches no pattern/);
    expect(() => commandArgv("echo hi", cloudShell(shell, { SHELL_ENABLED: "false" }))).toThrow(
      /matches no pattern/,
    );
    expect(commandArgv("echo hi", cloudShell(shell, { SHELL_ENABLED: "true" }))).toEqual(["echo", "hi"]);
  });
});

describe("the stack's encryption key secret", () => {
  it("reads as 32 bytes when it is 64 hex characters, the form the stack generates", () => {
    const hex = "0123456789abcdef".repeat(4);
    expect(parseEncryptionKey(hex, "secret").length).toBe(32);
    // What the stack generated before: 64 letters and digits decode to 48 bytes and are refused.
    expect(() =>
      parseEncryptionKey("AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz01", "s"),
    ).toThrow(/32 bytes/);
  });
});
